//! Opening a store from configuration: a URL or a plain path.

use crate::{BlobStore, ObjectStoreBlobStore, StorageError};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use std::path::Path;
use std::sync::Arc;

/// The locations [`open_store`] understands, as shown in its error messages.
pub const SUPPORTED_LOCATIONS: &str = "memory:// (in-process, empty, lost on exit), file:///absolute/dir, or a plain directory path (./data, /var/lib/x)";

/// Opens a store from a URL or path: `memory://`, `file:///abs/dir`, or a plain path (`./data`,
/// `/var/lib/x`, relative to the working directory), creating the directory if needed.
///
/// Local directories are opened with fsync enabled (see [`ObjectStoreBlobStore`]'s durability notes).
/// Every `memory://` call returns a new, empty store. Unknown schemes are a [`StorageError::Other`] naming
/// the URL and listing [`SUPPORTED_LOCATIONS`].
///
/// ```
/// let store = dicomweb_storage::open_store("memory://")?;
/// assert!(format!("{store:?}").contains("memory"));
/// assert!(dicomweb_storage::open_store("ftp://example.org/x").is_err());
/// # Ok::<(), dicomweb_storage::StorageError>(())
/// ```
pub fn open_store(url: &str) -> Result<Arc<dyn BlobStore>, StorageError> {
    if url.trim().is_empty() {
        return Err(StorageError::other(format!(
            "storage location is empty; expected {SUPPORTED_LOCATIONS}"
        )));
    }
    let Some(scheme) = url_scheme(url) else {
        return open_local_dir(Path::new(url));
    };
    match scheme.as_str() {
        "memory" => Ok(Arc::new(ObjectStoreBlobStore::new(
            Arc::new(InMemory::new()),
            "memory".to_owned(),
        ))),
        "file" => {
            let parsed = url::Url::parse(url).map_err(|e| StorageError::Other {
                message: format!("invalid storage URL {url:?}: {e}"),
                source: Some(Box::new(e)),
            })?;
            let dir = parsed.to_file_path().map_err(|()| {
                StorageError::other(format!(
                    "storage URL {url:?} is not an absolute local path; expected file:///absolute/dir"
                ))
            })?;
            open_local_dir(&dir)
        }
        // Remote stores (s3://, az://) go here: build them with
        // `object_store::parse_url_opts(&url, options)`, which returns the store and the path inside it
        // to wrap in `object_store::prefix::PrefixStore`, then `ObjectStoreBlobStore::new`.
        _ => Err(StorageError::other(format!(
            "unsupported storage URL {url:?}: scheme {scheme:?} is not supported; supported: {SUPPORTED_LOCATIONS}"
        ))),
    }
}

/// The lowercase scheme when `location` looks like a URL (`scheme:...`), `None` for a plain path.
/// One-letter schemes are taken as Windows drive letters (`C:\data`), hence plain paths.
fn url_scheme(location: &str) -> Option<String> {
    let (candidate, _) = location.split_once(':')?;
    let mut chars = candidate.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let is_scheme = starts_with_letter
        && candidate.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    is_scheme.then(|| candidate.to_ascii_lowercase())
}

fn open_local_dir(dir: &Path) -> Result<Arc<dyn BlobStore>, StorageError> {
    std::fs::create_dir_all(dir).map_err(|e| StorageError::Other {
        message: format!("cannot create storage directory {}: {e}", dir.display()),
        source: Some(Box::new(e)),
    })?;
    let local = LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| StorageError::Other {
            message: format!("cannot open storage directory {}: {e}", dir.display()),
            source: Some(Box::new(e)),
        })?
        .with_fsync(true);
    let description = format!("local disk {}", dir.display());
    tracing::debug!(%description, "opened blob store");
    Ok(Arc::new(ObjectStoreBlobStore::new(
        Arc::new(local),
        description,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_told_apart_from_paths() {
        assert_eq!(url_scheme("memory://").as_deref(), Some("memory"));
        assert_eq!(url_scheme("FILE:///x").as_deref(), Some("file"));
        assert_eq!(url_scheme("s3://bucket/p").as_deref(), Some("s3"));
        for path in [
            "./data",
            "/var/lib/x",
            "data",
            "C:\\data",
            "/a/b:c",
            "../x:y",
        ] {
            assert_eq!(url_scheme(path), None, "{path:?} is a path");
        }
    }

    #[test]
    fn unknown_schemes_name_the_url_and_the_supported_ones() {
        let error = open_store("s3://bucket/prefix")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("s3://bucket/prefix"), "{error}");
        assert!(
            error.contains("memory://") && error.contains("file:///"),
            "{error}"
        );
    }

    #[test]
    fn relative_file_urls_and_empty_locations_are_rejected() {
        assert!(open_store("file://relative/dir").is_err());
        assert!(open_store("").is_err());
        assert!(open_store("  ").is_err());
    }
}
