//! How a commit can fail.

use crate::object::catalog::CatalogError;
use crate::object::upload_deadline::DeadlineError;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("the upload was abandoned (its intent was collected) before it could commit")]
    Abandoned,
    #[error("the write lost {attempts} commit races in a row")]
    Contended { attempts: usize },
    #[error("the key's current state does not satisfy the request's condition")]
    PreconditionFailed,
    #[error("the multipart upload does not exist")]
    NoSuchUpload,
    #[error("the multipart upload is being completed or aborted")]
    UploadClosing,
    /// The upload is older than the cluster's upload deadline: refused, given up.
    #[error(transparent)]
    Deadline(DeadlineError),
}
