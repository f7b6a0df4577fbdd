//! Limits on what a client may send. s3s sets none on object bodies; these are S3's own
//! where S3 has one, so clients that work against S3 work here.

/// Largest single PUT (S3: 5 GiB).
pub const OBJECT_BYTES_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// Largest part (S3: 5 GiB).
pub const PART_BYTES_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// Smallest part other than the last (S3: 5 MiB).
pub const PART_BYTES_MIN: u64 = 5 * 1024 * 1024;
/// Part numbers are 1..=10 000 (S3).
pub const PART_NUMBER_MAX: i32 = 10_000;
/// User metadata, names + values (S3: 2 KiB).
pub const USER_METADATA_BYTES_MAX: usize = 2 * 1024;
/// Object keys (S3: 1024 bytes of UTF-8).
pub const KEY_BYTES_MAX: usize = 1024;
/// XML bodies (DeleteObjects, CompleteMultipartUpload): beyond this,
/// MaxMessageLengthExceeded. 10 000 parts with ETags and checksums fit in ~1 MiB.
pub const XML_BODY_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Request line + headers (hyper's read buffer): beyond this, 431.
pub const HEADER_BYTES_MAX: usize = 64 * 1024;
/// Keys in one DeleteObjects (S3: 1000).
pub const DELETE_OBJECTS_KEYS_MAX: usize = 1000;
/// Shardlets one object may reference: its record must fit the metadata service's
/// 1 MiB value limit (~70 bytes per reference). 8 000 × 2 MiB = ~16 GiB per object.
pub const OBJECT_SHARDLETS_MAX: usize = 8_000;
/// Parts listed per ListParts page and uploads per ListMultipartUploads page.
pub const LIST_PAGE_MAX: usize = 1000;
