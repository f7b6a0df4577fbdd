//! What can go wrong storing or reading a fragment, for every layer that touches the disk
//! (fragment files, the small-fragment store, the store) and for the API, which maps each
//! variant onto a status in [`crate::error`].

use std::io;

use shardlet_core::Crc32c;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("fragment not found")]
    NotFound,
    #[error("stored fragment failed verification: {0}")]
    ChecksumMismatch(String),
    #[error("body CRC32C is {actual}, the x-shardlet-crc32c header says {claimed}")]
    CrcMismatch { claimed: Crc32c, actual: Crc32c },
    #[error("body is {actual} bytes, Content-Length said {expected}")]
    LengthMismatch { expected: u64, actual: u64 },
    #[error("a different fragment with this id is already stored (fragments are immutable)")]
    FragmentExists,
    #[error("read error: {0}")]
    Read(io::Error),
    #[error("write error: {0}")]
    Write(io::Error),
    #[error("fsync failed: {0}; this node refuses writes until it restarts")]
    Fsync(io::Error),
    /// An earlier fsync failed: the node no longer acknowledges writes (the reason).
    #[error(
        "this node refuses writes since an fsync failed ({0}); restart it once its disk is checked"
    )]
    WritesRefused(String),
}

impl StoreError {
    pub fn read(error: io::Error) -> Self {
        Self::Read(error)
    }
    pub fn write(error: io::Error) -> Self {
        Self::Write(error)
    }
    pub fn fsync(error: io::Error) -> Self {
        Self::Fsync(error)
    }
}
