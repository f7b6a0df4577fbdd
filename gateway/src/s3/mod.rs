//! The S3 layer: translates S3 requests (over `s3s`) to the object layer and its
//! answers back to S3. It owns S3's wire meaning — operations, headers, error codes,
//! limits, checksums, preconditions — and nothing else: it never builds a metadata
//! batch and never touches the key layout (`crate::object::commit` and the catalog do;
//! a unit test below holds this line).
//!
//! `access.rs` is authorization: the one check every request passes (s3s's access
//! hook) before any handler runs. `gateway.rs` holds the shared state ([`Gateway`]), `service.rs` the `s3s::S3`
//! implementation, which only dispatches to the operation modules (`buckets`,
//! `objects`, `listing`, `multipart`). Operations not listed there answer 501
//! NotImplemented (s3s's default).

pub mod access;
pub mod auth;
pub mod body;
pub mod buckets;
pub mod checksums;
pub mod conditions;
pub mod errors;
pub mod gateway;
pub mod host;
pub mod limits;
pub mod listing;
pub mod multipart;
pub mod objects;
pub mod service;

pub use gateway::Gateway;

#[cfg(test)]
mod layering_tests {
    /// The S3 layer's files, as compiled into this crate.
    const S3_LAYER: [(&str, &str); 14] = [
        ("access.rs", include_str!("access.rs")),
        ("auth.rs", include_str!("auth.rs")),
        ("gateway.rs", include_str!("gateway.rs")),
        ("service.rs", include_str!("service.rs")),
        ("body.rs", include_str!("body.rs")),
        ("buckets.rs", include_str!("buckets.rs")),
        ("checksums.rs", include_str!("checksums.rs")),
        ("conditions.rs", include_str!("conditions.rs")),
        ("errors.rs", include_str!("errors.rs")),
        ("host.rs", include_str!("host.rs")),
        ("limits.rs", include_str!("limits.rs")),
        ("listing.rs", include_str!("listing.rs")),
        ("multipart.rs", include_str!("multipart.rs")),
        ("objects.rs", include_str!("objects.rs")),
    ];

    #[test]
    fn the_s3_layer_never_builds_a_batch_nor_touches_the_key_layout() {
        let forbidden = ["Batch", "keys::", "schema::keys", "store::"];
        for (file, text) in S3_LAYER
            .iter()
            .chain([("mod.rs", include_str!("mod.rs"))].iter())
        {
            for line in text.lines() {
                // This test names what it forbids; its own lines are not a use.
                if line.contains("forbidden") || line.trim_start().starts_with("//") {
                    continue;
                }
                for word in forbidden {
                    assert!(
                        !line.contains(word),
                        "s3/{file} uses `{word}` (the S3 layer goes through crate::object): {line}"
                    );
                }
            }
        }
    }
}
