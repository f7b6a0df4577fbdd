//! The encoding every record shares: `[format version byte][JSON document]`, and the
//! trait that names a record's kind and newest format.

/// A record type stored in the metadata service.
pub trait Record: serde::Serialize + serde::de::DeserializeOwned {
    /// What the record is, for error messages.
    const KIND: &'static str;
    /// The newest format this build writes and the newest it can read.
    const FORMAT_VERSION: u8;
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{kind} record is empty")]
    Empty { kind: &'static str },
    #[error("{kind} record has format version {found}; this build reads up to {supported}")]
    UnsupportedVersion {
        kind: &'static str,
        found: u8,
        supported: u8,
    },
    #[error("{kind} record is malformed: {source}")]
    Malformed {
        kind: &'static str,
        source: serde_json::Error,
    },
}

pub fn encode<R: Record>(record: &R) -> Vec<u8> {
    let mut bytes = vec![R::FORMAT_VERSION];
    // Serializing our own plain structs to JSON cannot fail (no maps with non-string keys,
    // no custom serializers that error); an empty document would still fail to decode
    // loudly rather than silently.
    if let Err(error) = serde_json::to_writer(&mut bytes, record) {
        tracing::error!(kind = R::KIND, %error, "record serialization failed");
    }
    bytes
}

pub fn decode<R: Record>(bytes: &[u8]) -> Result<R, DecodeError> {
    let (&version, document) = bytes
        .split_first()
        .ok_or(DecodeError::Empty { kind: R::KIND })?;
    if version == 0 || version > R::FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            kind: R::KIND,
            found: version,
            supported: R::FORMAT_VERSION,
        });
    }
    serde_json::from_slice(document).map_err(|source| DecodeError::Malformed {
        kind: R::KIND,
        source,
    })
}
