#![allow(clippy::unwrap_used)]

use super::*;
use crate::ids::mix64;

fn shardlet(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64).map(|i| mix64(i ^ seed) as u8).collect()
}

fn rs(data: u8, parity: u8) -> Scheme {
    Scheme::ErasureCoded { data, parity }
}

fn slots(fragments: &[EncodedFragment]) -> Vec<Option<Vec<u8>>> {
    fragments.iter().map(|f| Some(f.bytes.clone())).collect()
}

/// Every subset of `0..width` with between 1 and `max` members.
fn subsets(width: usize, max: usize) -> Vec<Vec<usize>> {
    (1u32..1 << width)
        .filter(|mask| mask.count_ones() as usize <= max)
        .map(|mask| (0..width).filter(|i| mask & (1 << i) != 0).collect())
        .collect()
}

fn assert_survives_losing(scheme: Scheme, original: &[u8], lost: &[usize]) {
    let fragments = encode(scheme, original).unwrap();
    let mut available = slots(&fragments);
    for index in lost {
        available[*index] = None;
    }
    assert_eq!(
        decode(scheme, &mut available.clone(), original.len()).unwrap(),
        original,
        "{scheme} lost {lost:?}"
    );
    let rebuilt = rebuild(scheme, &mut available, original.len(), lost).unwrap();
    for fragment in rebuilt {
        assert_eq!(
            fragment,
            fragments[usize::from(fragment.index.0)],
            "{scheme} {lost:?}"
        );
    }
}

#[test]
fn every_loss_of_up_to_parity_fragments_reconstructs_exactly() {
    for (data, parity) in [(4u8, 2u8), (6, 3)] {
        let scheme = rs(data, parity);
        let original = shardlet(10_007, u64::from(data));
        for lost in subsets(scheme.width(), usize::from(parity)) {
            assert_survives_losing(scheme, &original, &lost);
        }
    }
}

#[test]
fn sampled_losses_reconstruct_for_wide_schemes() {
    for (data, parity) in [(8u8, 4u8), (10, 4)] {
        let scheme = rs(data, parity);
        let original = shardlet(65_536 + 13, u64::from(data));
        let all = subsets(scheme.width(), usize::from(parity));
        // A deterministic sample of ~200 subsets, always including all-parity-lost
        // and all-leading-data-lost.
        let step = (all.len() / 200).max(1);
        for lost in all.iter().step_by(step) {
            assert_survives_losing(scheme, &original, lost);
        }
        assert_survives_losing(
            scheme,
            &original,
            &(0..usize::from(parity)).collect::<Vec<_>>(),
        );
        let parity_only: Vec<usize> = (usize::from(data)..scheme.width()).collect();
        assert_survives_losing(scheme, &original, &parity_only);
    }
}

#[test]
fn too_few_fragments_is_an_error_never_garbage() {
    let scheme = rs(4, 2);
    let original = shardlet(1000, 1);
    let fragments = encode(scheme, &original).unwrap();
    for lost in subsets(6, 6).into_iter().filter(|l| l.len() > 2) {
        let mut available = slots(&fragments);
        for index in &lost {
            available[*index] = None;
        }
        let error = decode(scheme, &mut available.clone(), 1000).unwrap_err();
        assert!(
            matches!(error, CodecError::TooFewFragments { needed: 4, .. }),
            "{error}"
        );
        assert!(rebuild(scheme, &mut available, 1000, &[lost[0]]).is_err());
    }
    let replicated = Scheme::Replicated { copies: 3 };
    let error = decode(replicated, &mut [None, None, None], 10).unwrap_err();
    assert_eq!(
        error.to_string(),
        "replicated(3) needs 1 intact fragments to decode, only 0 available"
    );
}

#[test]
fn corrupted_fragments_are_caught_before_decoding() {
    let scheme = rs(4, 2);
    let original = shardlet(4096, 2);
    let fragments = encode(scheme, &original).unwrap();
    let mut read_back: Vec<Option<(Vec<u8>, Crc32c)>> = fragments
        .iter()
        .map(|f| Some((f.bytes.clone(), f.crc32c)))
        .collect();
    // Flip one bit in a data shard and truncate a parity shard.
    read_back[1].as_mut().unwrap().0[17] ^= 0x04;
    read_back[5].as_mut().unwrap().0.pop();
    let decoded = decode_checked(scheme, read_back.clone(), original.len()).unwrap();
    assert_eq!(decoded.bytes, original);
    assert_eq!(decoded.corrupt, vec![FragmentIndex(1), FragmentIndex(5)]);
    // A third bad fragment leaves only 3 intact: an error, not wrong bytes.
    read_back[0].as_mut().unwrap().0[0] ^= 0xff;
    let error = decode_checked(scheme, read_back, original.len()).unwrap_err();
    assert!(matches!(
        error,
        CodecError::TooFewFragments { available: 3, .. }
    ));
    // Single-fragment check.
    let bad = check_fragment(2, b"abc", fragments[2].crc32c).unwrap_err();
    assert!(
        bad.to_string()
            .starts_with("fragment 2 failed its checksum"),
        "{bad}"
    );
    assert!(check_fragment(2, &fragments[2].bytes, fragments[2].crc32c).is_ok());
}

#[test]
fn corrupted_replica_falls_back_to_another_copy() {
    let scheme = Scheme::Replicated { copies: 3 };
    let original = shardlet(333, 3);
    let fragments = encode(scheme, &original).unwrap();
    assert!(fragments
        .iter()
        .all(|f| f.bytes == original && f.crc32c == Crc32c::of(&original)));
    let mut read_back: Vec<_> = fragments
        .iter()
        .map(|f| Some((f.bytes.clone(), f.crc32c)))
        .collect();
    read_back[0].as_mut().unwrap().0[100] ^= 1;
    let decoded = decode_checked(scheme, read_back, 333).unwrap();
    assert_eq!(decoded.bytes, original);
    assert_eq!(decoded.corrupt, vec![FragmentIndex(0)]);
}

#[test]
fn zero_and_one_byte_shardlets() {
    for scheme in [rs(4, 2), rs(8, 4), Scheme::Replicated { copies: 2 }] {
        for original in [Vec::new(), vec![0xa5u8]] {
            let fragments = encode(scheme, &original).unwrap();
            assert_eq!(fragments.len(), scheme.width());
            let expected_len = fragment_len(scheme, original.len());
            assert!(fragments.iter().all(|f| f.bytes.len() == expected_len));
            assert!(verify(
                scheme,
                &fragments
                    .iter()
                    .map(|f| f.bytes.clone())
                    .collect::<Vec<_>>()
            )
            .unwrap());
            let lost: Vec<usize> = (0..scheme.tolerated_losses()).collect();
            let mut available = slots(&fragments);
            for index in &lost {
                available[*index] = None;
            }
            assert_eq!(
                decode(scheme, &mut available.clone(), original.len()).unwrap(),
                original
            );
            let rebuilt = rebuild(scheme, &mut available, original.len(), &lost).unwrap();
            for fragment in rebuilt {
                assert_eq!(fragment, fragments[usize::from(fragment.index.0)]);
            }
        }
    }
}

#[test]
fn lengths_not_divisible_by_data_are_padded_and_trimmed() {
    let scheme = rs(6, 3);
    for len in [5, 6, 7, 1023, 65_537] {
        let original = shardlet(len, len as u64);
        let fragments = encode(scheme, &original).unwrap();
        assert!(fragments.iter().all(|f| f.bytes.len() == len.div_ceil(6)));
        assert_survives_losing(scheme, &original, &[0, 5, 8]);
    }
}

#[test]
fn verify_detects_inconsistent_parity() {
    let scheme = rs(4, 2);
    let mut all: Vec<Vec<u8>> = encode(scheme, &shardlet(999, 4))
        .unwrap()
        .into_iter()
        .map(|f| f.bytes)
        .collect();
    assert!(verify(scheme, &all).unwrap());
    all[4][0] ^= 1;
    assert!(!verify(scheme, &all).unwrap());
    all[4][0] ^= 1;
    all[2].push(0);
    assert!(!verify(scheme, &all).unwrap());
    assert!(verify(scheme, &all[..5]).is_err());
}

#[test]
fn malformed_input_is_rejected_with_reasons() {
    let scheme = rs(4, 2);
    let fragments = encode(scheme, &shardlet(100, 5)).unwrap();
    let mut wrong_count = slots(&fragments);
    wrong_count.pop();
    assert!(matches!(
        decode(scheme, &mut wrong_count, 100),
        Err(CodecError::WrongFragmentCount { .. })
    ));
    let mut wrong_len = slots(&fragments);
    wrong_len[3].as_mut().unwrap().push(1);
    let error = decode(scheme, &mut wrong_len, 100).unwrap_err();
    assert!(
        error.to_string().contains("fragment 3 is 26 bytes"),
        "{error}"
    );
    // The caller's original length disagrees with the fragments.
    assert!(decode(scheme, &mut slots(&fragments), 200).is_err());
    assert!(matches!(
        rebuild(scheme, &mut slots(&fragments), 100, &[6]),
        Err(CodecError::IndexOutOfRange { index: 6, .. })
    ));
    for bad in [rs(0, 2), rs(4, 0), Scheme::Replicated { copies: 0 }] {
        assert!(matches!(
            encode(bad, b"x"),
            Err(CodecError::InvalidScheme(_))
        ));
    }
}

#[test]
fn encode_into_reuses_buffers_and_matches_encode() {
    let scheme = rs(8, 4);
    let mut reused = Vec::new();
    for (len, seed) in [(70_000, 1), (70_000, 2), (10, 3), (200_000, 4)] {
        let original = shardlet(len, seed);
        encode_into(scheme, &original, &mut reused).unwrap();
        assert_eq!(reused, encode(scheme, &original).unwrap());
    }
    encode_into(Scheme::Replicated { copies: 2 }, b"abc", &mut reused).unwrap();
    assert_eq!(reused.len(), 2);
    assert_eq!(reused[1].bytes, b"abc");
}

#[test]
fn zero_copy_encoding_matches_owned_fragments_for_every_length() {
    let scheme = rs(8, 4);
    // One reused encoding across lengths that do and do not need padded data shards.
    let mut encoding = ErasureEncoding::default();
    for len in [
        0,
        1,
        7,
        8,
        9,
        63,
        64,
        65,
        1000,
        8 * 4096,
        8 * 4096 + 3,
        100_000,
    ] {
        let original = shardlet(len, len as u64);
        encode_erasure_into(scheme, &original, &mut encoding).unwrap();
        let owned = encode(scheme, &original).unwrap();
        assert_eq!(encoding.width(), owned.len());
        for (index, fragment) in owned.iter().enumerate() {
            let bytes = encoding.fragment(&original, index);
            assert_eq!(
                bytes,
                fragment.bytes.as_slice(),
                "len {len} fragment {index}"
            );
            assert_eq!(
                encoding.crcs[index],
                Crc32c::of(bytes),
                "len {len} crc {index}"
            );
            assert_eq!(encoding.crcs[index], fragment.crc32c);
        }
        // Data fragments inside the input are not copies.
        for index in 0..8 {
            if (index + 1) * encoding.shard_len <= len {
                assert!(matches!(encoding.source(index), FragmentSource::Input(_)));
            }
        }
        let moved = encoding.clone().into_fragments();
        for ((piece, crc), fragment) in moved.iter().zip(&owned) {
            let bytes = match piece {
                FragmentBytes::Input(range) => &original[range.clone()],
                FragmentBytes::Owned(bytes) => bytes.as_slice(),
            };
            assert_eq!(bytes, fragment.bytes.as_slice());
            assert_eq!(*crc, fragment.crc32c);
        }
    }
}

#[test]
fn zero_copy_encoding_refuses_replicated_schemes() {
    let mut encoding = ErasureEncoding::default();
    assert!(encode_erasure_into(Scheme::Replicated { copies: 3 }, b"abc", &mut encoding).is_err());
}
