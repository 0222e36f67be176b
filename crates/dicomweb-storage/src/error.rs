//! The storage error type and the translation of `object_store` errors into it.

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a storage operation failed.
///
/// The variants are what a caller acts on: `NotFound` (404), `AlreadyExists` (409), `InvalidKey` (a bug or a
/// bad identifier), `Unavailable` (transient: a retry may help, 503) and `Other` (500).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No blob exists at `key`.
    #[error("blob not found: {key}")]
    NotFound {
        /// The key that was asked for.
        key: String,
    },
    /// A blob already exists at `key` (from [`crate::BlobStore::create`]).
    #[error("blob already exists: {key}")]
    AlreadyExists {
        /// The key that was asked for.
        key: String,
    },
    /// `key` is not a valid key (see [`crate::validate_key`]); the backend was not touched.
    #[error("invalid blob key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The backend is temporarily unreachable or overloaded (timeout, connection error, 5xx, disk full):
    /// retrying later may succeed.
    #[error("storage unavailable: {message}")]
    Unavailable {
        /// What failed, with context.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other failure (including invalid ranges and I/O errors that a retry will not fix).
    #[error("storage error: {message}")]
    Other {
        /// What failed, with context.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl StorageError {
    /// An [`StorageError::Other`] without an underlying error.
    pub fn other(message: impl Into<String>) -> Self {
        Self::Other {
            message: message.into(),
            source: None,
        }
    }

    /// An [`StorageError::Unavailable`] without an underlying error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// Whether retrying the operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Translates an `object_store` error raised while working on `key`.
///
/// `Precondition` only arises from conditional writes, which this crate uses solely for exclusive creation,
/// hence its mapping to `AlreadyExists`.
pub(crate) fn from_object_store(
    error: object_store::Error,
    operation: &str,
    key: &str,
) -> StorageError {
    match error {
        object_store::Error::NotFound { .. } => StorageError::NotFound {
            key: key.to_owned(),
        },
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            StorageError::AlreadyExists {
                key: key.to_owned(),
            }
        }
        error => {
            let message = format!("{operation} {key:?}: {error}");
            if is_transient(&error) {
                StorageError::Unavailable {
                    message,
                    source: Some(Box::new(error)),
                }
            } else {
                StorageError::Other {
                    message,
                    source: Some(Box::new(error)),
                }
            }
        }
    }
}

/// Whether an `object_store` error is transient, as [`from_object_store`] judges it.
pub(crate) fn is_transient_error(error: &object_store::Error) -> bool {
    is_transient(error)
}

/// Whether an error is worth retrying later, judged from its source chain.
///
/// object_store has already retried transient failures of remote stores (see
/// [`crate::default_retry_config`]) when an error reaches this function, so a transient error here means the
/// retries or their deadline ran out: the backend is unavailable.
///
/// * Local I/O errors: timeouts, connection failures, full disks, busy resources.
/// * Remote stores: `object_store::client::HttpError` of kind connect, request, timeout or interrupted (the
///   connection failed or dropped).
/// * Remote stores: an HTTP status 5xx, 429 or 408 that outlived the retries. object_store 0.14 does not
///   export its `RetryError` (only its `Display`, "... Server returned non-2xx status code: 503 Service
///   Unavailable ..."), so the status is read from that text.
fn is_transient(error: &(dyn std::error::Error + 'static)) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    use std::io::ErrorKind;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(http) = error.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            );
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::TimedOut
                    | ErrorKind::Interrupted
                    | ErrorKind::WouldBlock
                    | ErrorKind::ConnectionRefused
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::NotConnected
                    | ErrorKind::BrokenPipe
                    | ErrorKind::StorageFull
                    | ErrorKind::ResourceBusy
                    | ErrorKind::QuotaExceeded
            );
        }
        if http_status_in(&error.to_string()).is_some_and(is_transient_status) {
            return true;
        }
        current = error.source();
    }
    false
}

/// The HTTP status in the message object_store gives a failed request, if any.
fn http_status_in(message: &str) -> Option<u16> {
    const MARKER: &str = "status code: ";
    let start = message.find(MARKER)? + MARKER.len();
    let digits = message.get(start..start + 3)?;
    digits.parse().ok()
}

fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(source: BoxError) -> object_store::Error {
        object_store::Error::Generic {
            store: "test",
            source,
        }
    }

    #[test]
    fn not_found_keeps_the_callers_key() {
        let error = object_store::Error::NotFound {
            path: "/abs/fs/path".into(),
            source: "gone".into(),
        };
        match from_object_store(error, "get", "a/b") {
            StorageError::NotFound { key } => assert_eq!(key, "a/b"),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    #[test]
    fn already_exists_and_precondition_mean_already_exists() {
        for error in [
            object_store::Error::AlreadyExists {
                path: "x".into(),
                source: "exists".into(),
            },
            object_store::Error::Precondition {
                path: "x".into(),
                source: "etag".into(),
            },
        ] {
            assert!(matches!(
                from_object_store(error, "create", "k"),
                StorageError::AlreadyExists { key } if key == "k"
            ));
        }
    }

    #[test]
    fn timeouts_and_full_disks_are_transient() {
        for kind in [
            std::io::ErrorKind::TimedOut,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::StorageFull,
        ] {
            let error = generic(Box::new(std::io::Error::new(kind, "boom")));
            let mapped = from_object_store(error, "put", "k");
            assert!(
                mapped.is_transient(),
                "{kind:?} should be transient: {mapped:?}"
            );
        }
    }

    #[test]
    fn broken_connections_to_remote_stores_are_transient() {
        use object_store::client::{HttpError, HttpErrorKind};
        for kind in [
            HttpErrorKind::Connect,
            HttpErrorKind::Timeout,
            HttpErrorKind::Request,
        ] {
            let error = generic(Box::new(HttpError::new(
                kind,
                std::io::Error::other("boom"),
            )));
            assert!(
                from_object_store(error, "get", "k").is_transient(),
                "{kind:?}"
            );
        }
        let decode = generic(Box::new(HttpError::new(
            HttpErrorKind::Decode,
            std::io::Error::other("bad xml"),
        )));
        assert!(!from_object_store(decode, "get", "k").is_transient());
    }

    #[test]
    fn server_errors_and_throttling_that_outlive_retries_are_transient() {
        let message = |status: &str| {
            format!(
                "Error performing PUT http://h/b/k in 2s, after 10 retries - Server returned non-2xx status code: {status}: <Error/>"
            )
        };
        for status in [
            "503 Service Unavailable",
            "500 Internal Server Error",
            "429 Too Many Requests",
        ] {
            let error = generic(message(status).into());
            assert!(
                from_object_store(error, "put", "k").is_transient(),
                "{status}"
            );
        }
        for status in ["400 Bad Request", "404 Not Found"] {
            let error = generic(message(status).into());
            assert!(
                !from_object_store(error, "put", "k").is_transient(),
                "{status}"
            );
        }
    }

    #[test]
    fn other_failures_are_not_transient_and_keep_context() {
        let error = generic(Box::new(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "denied",
        )));
        let mapped = from_object_store(error, "put", "a/b");
        assert!(!mapped.is_transient());
        let text = mapped.to_string();
        assert!(
            text.contains("put") && text.contains("a/b") && text.contains("denied"),
            "{text}"
        );
        assert!(std::error::Error::source(&mapped).is_some());
    }
}
