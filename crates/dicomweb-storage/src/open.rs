//! Opening a store from configuration: a URL or a plain path.

use crate::{BlobStore, ObjectStoreBlobStore, StorageError};
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3CopyIfNotExists};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStoreScheme, RetryConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The locations [`open_store`] understands, as shown in its error messages.
pub const SUPPORTED_LOCATIONS: &str = "memory:// (in-process, empty, lost on exit), file:///absolute/dir, a plain directory path (./data, /var/lib/x), s3://bucket[/prefix], az://container[/prefix] or https://account.blob.core.windows.net/container[/prefix]";

/// Opens a store from a URL or path; see [`open_object_store`] for the forms and their configuration.
///
/// ```
/// let store = dicomweb_storage::open_store("memory://")?;
/// assert!(format!("{store:?}").contains("memory"));
/// assert!(dicomweb_storage::open_store("ftp://example.org/x").is_err());
/// # Ok::<(), dicomweb_storage::StorageError>(())
/// ```
pub fn open_store(url: &str) -> Result<Arc<dyn BlobStore>, StorageError> {
    Ok(Arc::new(open_object_store(url)?))
}

/// Opens a store from a URL or path, with the [`default_retry_config`] for remote stores.
///
/// * `memory://`: a new, empty in-process store on every call.
/// * `file:///abs/dir` or a plain path (`./data`, `/var/lib/x`, relative to the working directory): a local
///   directory, created if needed, whose writes [`BlobStore::sync_writes`] makes durable with one shared
///   `syncfs` (see [`ObjectStoreBlobStore`]'s durability notes).
/// * `s3://bucket/prefix`: Amazon S3 or a compatible store, configured by object_store's
///   `AmazonS3Builder::from_env` (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
///   `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, web identity / ECS / instance metadata credentials, ...).
///   Exclusive publication of large bodies uses `S3CopyIfNotExists::Multipart` unless
///   `AWS_COPY_IF_NOT_EXISTS` says otherwise.
/// * `az://container/prefix` or `https://account.blob.core.windows.net/container/prefix`: Azure Blob
///   Storage, configured by `MicrosoftAzureBuilder::from_env` (`AZURE_STORAGE_ACCOUNT_NAME`,
///   `AZURE_STORAGE_ACCOUNT_KEY`, SAS tokens, service principals, managed identity, and the Azurite
///   emulator with `AZURE_STORAGE_USE_EMULATOR=true` plus `AZURITE_BLOB_STORAGE_URL`).
///
/// The key prefix of a remote URL (the path after the bucket or container) becomes an
/// `object_store::prefix::PrefixStore`: every key, staging blobs included, lives under it.
///
/// Remote clients time out a connection attempt after 5 s, a stalled read after 30 s and any single
/// request after 10 min (override with `AWS_CONNECT_TIMEOUT`, `AWS_READ_TIMEOUT`, `AWS_TIMEOUT` or their
/// `AZURE_` forms). Nothing is contacted here: use [`ObjectStoreBlobStore::check`] to verify that the
/// store is reachable and writable.
///
/// A malformed URL, an unknown scheme or missing configuration (e.g. no Azure account) is a
/// [`StorageError::Other`] naming the URL and the cause.
pub fn open_object_store(url: &str) -> Result<ObjectStoreBlobStore, StorageError> {
    open_object_store_with_retry(url, default_retry_config())
}

/// How persistently transient failures are retried, in terms that need no object_store types: at most
/// `max_retries` retries, none started after `deadline` (backoff as in [`default_retry_config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: usize,
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let config = default_retry_config();
        RetryPolicy {
            max_retries: config.max_retries,
            deadline: config.retry_timeout,
        }
    }
}

/// [`open_object_store`] with a retry policy of the caller's (a quick health check, an operator's deadline).
pub fn open_object_store_with_policy(
    url: &str,
    policy: RetryPolicy,
) -> Result<ObjectStoreBlobStore, StorageError> {
    let retry = RetryConfig {
        max_retries: policy.max_retries,
        retry_timeout: policy.deadline,
        ..default_retry_config()
    };
    open_object_store_with_retry(url, retry)
}

/// The retry policy of remote stores: up to 10 retries of transient failures (connection errors,
/// timeouts of idempotent requests, 5xx, throttling) with exponential backoff from 100 ms to 15 s, and
/// none started more than 2 minutes after the first attempt. Past that the error is
/// [`StorageError::Unavailable`].
pub fn default_retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: Duration::from_secs(120),
    }
}

/// [`open_object_store`] with an explicit retry policy for remote stores (ignored by local ones).
pub fn open_object_store_with_retry(
    url: &str,
    retry: RetryConfig,
) -> Result<ObjectStoreBlobStore, StorageError> {
    if url.trim().is_empty() {
        return Err(StorageError::other(format!(
            "storage location is empty; expected {SUPPORTED_LOCATIONS}"
        )));
    }
    let Some(scheme) = url_scheme(url) else {
        return open_local_dir(Path::new(url));
    };
    match scheme.as_str() {
        "memory" => Ok(ObjectStoreBlobStore::new(
            Arc::new(InMemory::new()),
            "memory".to_owned(),
        )),
        "file" => {
            let parsed = parse_url(url)?;
            let dir = parsed.to_file_path().map_err(|()| {
                StorageError::other(format!(
                    "storage URL {url:?} is not an absolute local path; expected file:///absolute/dir"
                ))
            })?;
            open_local_dir(&dir)
        }
        "s3" | "az" | "https" => open_remote(url, retry),
        _ => Err(StorageError::other(format!(
            "unsupported storage URL {url:?}: scheme {scheme:?} is not supported; supported: {SUPPORTED_LOCATIONS}"
        ))),
    }
}

fn parse_url(url: &str) -> Result<url::Url, StorageError> {
    url::Url::parse(url).map_err(|e| StorageError::Other {
        message: format!("invalid storage URL {url:?}: {e}"),
        source: Some(Box::new(e)),
    })
}

/// Client timeouts set unless the environment sets them (`<PREFIX>_<KEY>`, as object_store reads them).
const CLIENT_TIMEOUTS: [(ClientConfigKey, &str, &str); 3] = [
    (ClientConfigKey::ConnectTimeout, "CONNECT_TIMEOUT", "5s"),
    (ClientConfigKey::ReadTimeout, "READ_TIMEOUT", "30s"),
    // Bounds a whole request, body included: generous, since one GET may stream a multi-GiB blob.
    (ClientConfigKey::Timeout, "TIMEOUT", "600s"),
];

fn open_remote(url: &str, retry: RetryConfig) -> Result<ObjectStoreBlobStore, StorageError> {
    let parsed = parse_url(url)?;
    // object_store's own reading of the URL: which cloud, and the key prefix after the bucket/container.
    let (scheme, prefix) = ObjectStoreScheme::parse(&parsed).map_err(|e| StorageError::Other {
        message: format!("invalid storage URL {url:?}: {e}; supported: {SUPPORTED_LOCATIONS}"),
        source: Some(Box::new(e)),
    })?;
    let unset = |prefix: &str, name: &str| std::env::var_os(format!("{prefix}_{name}")).is_none();
    let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match scheme {
        ObjectStoreScheme::AmazonS3 => {
            let mut builder = AmazonS3Builder::from_env().with_url(url).with_retry(retry);
            if unset("AWS", "COPY_IF_NOT_EXISTS") {
                // Native S3 (since 2024) and moto honour If-None-Match on CompleteMultipartUpload, which
                // this mode relies on; small bodies use If-None-Match on PutObject (object_store's default
                // S3ConditionalPut::ETagMatch).
                builder = builder.with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
            }
            for (key, name, value) in CLIENT_TIMEOUTS {
                if unset("AWS", name) {
                    builder = builder.with_config(AmazonS3ConfigKey::Client(key), value);
                }
            }
            builder.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        }
        ObjectStoreScheme::MicrosoftAzure => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_retry(retry);
            for (key, name, value) in CLIENT_TIMEOUTS {
                if unset("AZURE", name) {
                    builder = builder.with_config(AzureConfigKey::Client(key), value);
                }
            }
            builder.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        }
        _ => {
            return Err(StorageError::other(format!(
                "unsupported storage URL {url:?}: not an S3 or Azure Blob location; supported: {SUPPORTED_LOCATIONS}"
            )));
        }
    };
    let store = built.map_err(|e| StorageError::Other {
        message: format!("cannot open storage {url:?}: {e}"),
        source: Some(Box::new(e)),
    })?;
    let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    };
    // The URL names the store in logs and errors; strip any query (a SAS token is a secret).
    let mut description = parsed;
    description.set_query(None);
    let description = description.to_string();
    tracing::debug!(%description, "opened blob store");
    Ok(ObjectStoreBlobStore::new(store, description))
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

fn open_local_dir(dir: &Path) -> Result<ObjectStoreBlobStore, StorageError> {
    std::fs::create_dir_all(dir).map_err(|e| StorageError::Other {
        message: format!("cannot create storage directory {}: {e}", dir.display()),
        source: Some(Box::new(e)),
    })?;
    let local = LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| StorageError::Other {
            message: format!("cannot open storage directory {}: {e}", dir.display()),
            source: Some(Box::new(e)),
        })?
        // Writes are made durable by `sync_writes` (one syncfs for all concurrent writers), not one by one.
        .with_fsync(false);
    let description = format!("local disk {}", dir.display());
    tracing::debug!(%description, "opened blob store");
    ObjectStoreBlobStore::new(Arc::new(local), description)
        .with_local_root(dir.to_owned())
        .with_filesystem_sync(dir)
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

    fn open_error(url: &str) -> String {
        open_store(url)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn unknown_schemes_name_the_url_and_the_supported_ones() {
        for url in [
            "ftp://example.org/x",
            "gs://bucket/p",
            "https://example.org/x",
        ] {
            let error = open_error(url);
            assert!(error.contains(url), "{error}");
            assert!(
                error.contains("memory://") && error.contains("s3://") && error.contains("az://"),
                "{error}"
            );
        }
    }

    #[test]
    fn malformed_remote_urls_name_the_url_and_the_cause() {
        for url in ["s3://", "az://", "s3://[bad/x"] {
            let error = open_error(url);
            assert!(error.contains(url), "{url}: {error}");
        }
    }

    #[test]
    fn azure_without_an_account_fails_at_open() {
        // Only meaningful where no Azure configuration is in the environment (it never is for `cargo
        // test`; tests/emulators/run-cloud-tests.sh sets it only for the `cloud` test binary).
        if std::env::vars().any(|(k, _)| k.starts_with("AZURE_")) {
            return;
        }
        let error = open_error("az://container/prefix");
        assert!(
            error.contains("az://container/prefix") && error.contains("Account must be specified"),
            "{error}"
        );
    }

    #[test]
    fn remote_descriptions_hide_the_query() {
        let store =
            open_object_store("https://account.blob.core.windows.net/container/prefix?sig=secret");
        if let Ok(store) = store {
            assert!(!store.description().contains("secret"), "{store:?}");
        }
        let s3 = open_object_store("s3://bucket/some/prefix");
        assert_eq!(
            s3.as_ref().map(|s| s.description()).ok(),
            Some("s3://bucket/some/prefix"),
            "{s3:?}"
        );
    }

    #[test]
    fn relative_file_urls_and_empty_locations_are_rejected() {
        assert!(open_store("file://relative/dir").is_err());
        assert!(open_store("").is_err());
        assert!(open_store("  ").is_err());
    }
}
