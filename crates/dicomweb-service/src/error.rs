//! The service's error type. The server maps it to HTTP status codes in exactly one place.

use dicomweb_catalogue::CatalogueError;
use dicomweb_index::IndexError;
use dicomweb_storage::StorageError;

/// What went wrong in a use case, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The addressed study, series, instance or frame does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed (bad UID, bad query parameter, unreadable body).
    #[error("{0}")]
    InvalidInput(String),
    /// The resource exists but cannot be represented as asked (e.g. a transfer syntax that needs transcoding).
    #[error("{0}")]
    NotAcceptable(String),
    /// The blob store failed; transient failures are worth a retry.
    #[error("storage error: {0}")]
    Storage(#[from] StorageError),
    /// The search index failed.
    #[error("index error: {0}")]
    Index(IndexError),
    /// The catalogue of record failed.
    #[error("catalogue error: {0}")]
    Catalogue(#[from] CatalogueError),
    /// A byte range asked of a value of `length` bytes holds none of them.
    #[error("the range asked for is not within the {length} bytes of the value")]
    RangeNotSatisfiable {
        /// The whole value's length.
        length: u64,
    },
    /// The service cannot answer now (the search index is catching up too slowly): retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else that is the server's fault.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// True when retrying later may succeed (the backend was unavailable).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ServiceError::Storage(StorageError::Unavailable { .. }) | ServiceError::Unavailable(_)
        )
    }
}

impl From<IndexError> for ServiceError {
    /// A query the index cannot run because of its values is the client's error (400), named by the
    /// attribute's keyword; every other index failure is the server's.
    fn from(error: IndexError) -> Self {
        match error {
            IndexError::QueryTooComplex {
                tag,
                pattern,
                reason,
            } => ServiceError::InvalidInput(format!(
                "the value \"{}\" of {} is too complex to match: {reason}",
                crate::uid::truncate_for_message(&pattern),
                crate::attributes::keyword_of(tag),
            )),
            other => ServiceError::Index(other),
        }
    }
}

/// Result alias of the service.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
