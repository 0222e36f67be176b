//! The conformance suite, the reachability check and error reporting on Amazon S3 and Azure Blob Storage,
//! against real emulators (moto's server and Azurite) on 127.0.0.1.
//!
//! The emulator tests are ignored by default; `tests/emulators/run-cloud-tests.sh` starts the emulators,
//! creates a bucket and a container, sets the environment and runs them with
//! `cargo test -p dicomweb-storage --test cloud -- --ignored`. They read:
//!
//! * `DICOMWEB_TEST_S3_URL` (`s3://bucket/prefix`) with the usual `AWS_*` variables (endpoint, keys,
//!   region, `AWS_ALLOW_HTTP`);
//! * `DICOMWEB_TEST_AZURE_URL` (`az://container/prefix`) with `AZURE_STORAGE_USE_EMULATOR=true` and
//!   `AZURITE_BLOB_STORAGE_URL`.
//!
//! A missing variable fails the test: an emulator test that passes without an emulator proves nothing.

use dicomweb_storage::{
    BlobStore, ObjectStoreBlobStore, StorageError, body_from_bytes, open_object_store, open_store,
    read_to_bytes,
};
use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, RetryConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

const EMULATORS: &str = "needs the emulators of tests/emulators/run-cloud-tests.sh";

/// The base URL of a backend from the environment; panics (fails the test) when it is not set.
fn base_url(variable: &str) -> String {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
        _ => panic!("{variable} is not set: run tests/emulators/run-cloud-tests.sh ({EMULATORS})"),
    }
}

/// A store on a fresh prefix of the backend, so that tests and runs never see each other's data.
fn fresh_store(variable: &str) -> Arc<dyn BlobStore> {
    let url = format!(
        "{}/test-{}",
        base_url(variable),
        uuid::Uuid::new_v4().simple()
    );
    match open_store(&url) {
        Ok(store) => store,
        Err(e) => panic!("open_store({url}): {e}"),
    }
}

fn s3() -> (Arc<dyn BlobStore>, ()) {
    (fresh_store("DICOMWEB_TEST_S3_URL"), ())
}

fn azure() -> (Arc<dyn BlobStore>, ()) {
    (fresh_store("DICOMWEB_TEST_AZURE_URL"), ())
}

dicomweb_storage::conformance_tests!(s3_store, s3(), #[ignore = "needs the emulators of tests/emulators/run-cloud-tests.sh"]);
dicomweb_storage::conformance_tests!(azure_store, azure(), #[ignore = "needs the emulators of tests/emulators/run-cloud-tests.sh"]);

/// The URL's key prefix isolates stores: what one writes, a store on a sibling prefix does not see, and
/// the bucket-level store sees it under the prefix.
async fn prefixes_isolate_stores(variable: &str) {
    let base = base_url(variable);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let one = open_store(&format!("{base}/iso-{run}/one")).unwrap();
    let two = open_store(&format!("{base}/iso-{run}/two")).unwrap();
    let parent = open_store(&format!("{base}/iso-{run}")).unwrap();
    one.create("a/blob", body_from_bytes("first"))
        .await
        .unwrap();
    assert!(matches!(
        two.head("a/blob").await,
        Err(StorageError::NotFound { .. })
    ));
    two.create("a/blob", body_from_bytes("second"))
        .await
        .unwrap();
    let (_, body) = parent.get("one/a/blob").await.unwrap();
    assert_eq!(read_to_bytes(body).await.unwrap(), "first");
    let (_, body) = parent.get("two/a/blob").await.unwrap();
    assert_eq!(read_to_bytes(body).await.unwrap(), "second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the emulators of tests/emulators/run-cloud-tests.sh"]
async fn s3_prefixes_isolate_stores() {
    prefixes_isolate_stores("DICOMWEB_TEST_S3_URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the emulators of tests/emulators/run-cloud-tests.sh"]
async fn azure_prefixes_isolate_stores() {
    prefixes_isolate_stores("DICOMWEB_TEST_AZURE_URL").await;
}

/// `check` passes on a working store and leaves nothing listed behind.
async fn check_passes_and_leaves_nothing(variable: &str) {
    let url = format!(
        "{}/check-{}",
        base_url(variable),
        uuid::Uuid::new_v4().simple()
    );
    let store = open_object_store(&url).unwrap();
    store.check().await.unwrap();
    store.check().await.unwrap();
    let mut listed = store.list("");
    use futures::StreamExt;
    assert!(listed.next().await.is_none(), "check left a visible blob");
    // Nor anything in the reserved staging area: the probe was deleted.
    assert_eq!(
        store.remove_stale_staging(Duration::ZERO).await.unwrap(),
        0,
        "check left its probe behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the emulators of tests/emulators/run-cloud-tests.sh"]
async fn s3_check_passes() {
    check_passes_and_leaves_nothing("DICOMWEB_TEST_S3_URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the emulators of tests/emulators/run-cloud-tests.sh"]
async fn azure_check_passes() {
    check_passes_and_leaves_nothing("DICOMWEB_TEST_AZURE_URL").await;
}

/// `check` on a bucket/container that does not exist fails, naming the URL and the cause, and is not
/// mistaken for a transient failure.
async fn check_names_a_missing_bucket(scheme: &str, variable: &str) {
    let _configured = base_url(variable);
    let url = format!("{scheme}://missing-{}/p", uuid::Uuid::new_v4().simple());
    let store = open_object_store(&url).unwrap();
    let error = store.check().await.err();
    let text = error.as_ref().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        matches!(error, Some(StorageError::Other { .. })),
        "{error:?}"
    );
    assert!(text.contains(&url), "{text}");
    assert!(
        text.contains("NoSuchBucket") || text.contains("ContainerNotFound"),
        "the cause is named: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the emulators of tests/emulators/run-cloud-tests.sh"]
async fn s3_check_names_a_missing_bucket() {
    check_names_a_missing_bucket("s3", "DICOMWEB_TEST_S3_URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the emulators of tests/emulators/run-cloud-tests.sh"]
async fn azure_check_names_a_missing_container() {
    check_names_a_missing_bucket("az", "DICOMWEB_TEST_AZURE_URL").await;
}

/// An S3 endpoint nobody listens on: after the (here short) retries, every operation is `Unavailable`,
/// within the retry deadline, and `check` says which store and why. Needs no emulator: the port is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_unavailable_after_bounded_retries() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(5),
    };
    let s3 = AmazonS3Builder::new()
        .with_bucket_name("bucket")
        .with_endpoint(format!("http://127.0.0.1:{closed_port}"))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("key")
        .with_secret_access_key("secret")
        .with_retry(retry)
        .build()
        .unwrap();
    let store = ObjectStoreBlobStore::new(Arc::new(s3), "s3://bucket (closed port)".into());
    let started = Instant::now();
    let created = store.create("a/b", body_from_bytes("x")).await;
    assert!(
        matches!(created, Err(StorageError::Unavailable { .. })),
        "{created:?}"
    );
    let got = store.get("a/b").await.err();
    assert!(
        matches!(got, Some(StorageError::Unavailable { .. })),
        "{got:?}"
    );
    let checked = store.check().await.err();
    let text = checked.as_ref().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        matches!(checked, Some(StorageError::Unavailable { .. })) && text.contains("closed port"),
        "{checked:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "retries must be bounded: {:?}",
        started.elapsed()
    );
}

/// The `https://<account>.blob.core.windows.net/<container>/<prefix>` form names the same blobs as
/// `az://<container>/<prefix>` (with the emulator, the account is Azurite's development account).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the emulators of tests/emulators/run-cloud-tests.sh"]
async fn azure_https_urls_name_the_same_blobs_as_az_urls() {
    let base = base_url("DICOMWEB_TEST_AZURE_URL");
    let Some(container_and_prefix) = base.strip_prefix("az://") else {
        panic!("DICOMWEB_TEST_AZURE_URL must be an az:// URL, got {base}");
    };
    let prefix = format!("https-{}", uuid::Uuid::new_v4().simple());
    let az = open_store(&format!("{base}/{prefix}")).unwrap();
    let https = open_store(&format!(
        "https://devstoreaccount1.blob.core.windows.net/{container_and_prefix}/{prefix}"
    ))
    .unwrap();
    az.create("a/blob", body_from_bytes("via az"))
        .await
        .unwrap();
    let (meta, body) = https.get("a/blob").await.unwrap();
    assert_eq!(meta.size, 6);
    assert_eq!(read_to_bytes(body).await.unwrap(), "via az");
    assert!(matches!(
        https.create("a/blob", body_from_bytes("again")).await,
        Err(StorageError::AlreadyExists { .. })
    ));
}

// ---- transient failures: a fault-injecting TCP proxy in front of the real S3 emulator ----

/// A proxy on 127.0.0.1 in front of `upstream`: its first `failing_connections` connections read one
/// request and answer `503 Service Unavailable` (then close); later connections are spliced to
/// `upstream` byte for byte. Returns its address and the number of connections accepted so far.
async fn flaky_proxy(
    upstream: std::net::SocketAddr,
    failing_connections: usize,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let number = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if number < failing_connections {
                    // Read the whole request (headers, then Content-Length bytes) so the client sees the
                    // answer rather than a reset while still sending.
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 8192];
                    let header_end = loop {
                        let Ok(read) = client.read(&mut buffer).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..read]);
                        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end + 4;
                        }
                    };
                    let headers =
                        String::from_utf8_lossy(&request[..header_end]).to_ascii_lowercase();
                    let body_len: usize = headers
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while request.len() < header_end + body_len {
                        let Ok(read) = client.read(&mut buffer).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..read]);
                    }
                    let _ = client
                        .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    let _ = client.shutdown().await;
                } else if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (address, accepted)
}

/// An S3 store on the emulator's bucket, reached through `endpoint`, with a fast retry policy.
fn s3_store_via(endpoint: std::net::SocketAddr, retry: RetryConfig) -> ObjectStoreBlobStore {
    let base = base_url("DICOMWEB_TEST_S3_URL");
    let Some(bucket) = base.strip_prefix("s3://").and_then(|b| b.split('/').next()) else {
        panic!("DICOMWEB_TEST_S3_URL must be an s3:// URL, got {base}");
    };
    let s3 = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_endpoint(format!("http://{endpoint}"))
        .with_allow_http(true)
        .with_retry(retry)
        .build()
        .unwrap();
    let prefix = format!("flaky-{}", uuid::Uuid::new_v4().simple());
    let store = object_store::prefix::PrefixStore::new(s3, prefix.as_str());
    ObjectStoreBlobStore::new(
        Arc::new(store),
        format!("s3://{bucket}/{prefix} via {endpoint}"),
    )
}

fn fast_retries(max_retries: usize) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            base: 2.0,
        },
        max_retries,
        retry_timeout: Duration::from_secs(10),
    }
}

fn s3_emulator_address() -> std::net::SocketAddr {
    let endpoint = std::env::var("AWS_ENDPOINT")
        .unwrap_or_else(|_| panic!("AWS_ENDPOINT is not set ({EMULATORS})"));
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    match authority.parse() {
        Ok(address) => address,
        Err(e) => panic!("AWS_ENDPOINT {endpoint} is not http://IP:PORT: {e}"),
    }
}

/// A few 503s are absorbed by the retries: exclusive creates, reads and deletes still succeed, and the
/// create is still exclusive afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the emulators of tests/emulators/run-cloud-tests.sh"]
async fn s3_transient_503s_are_retried() {
    use std::sync::atomic::Ordering;
    let (proxy, accepted) = flaky_proxy(s3_emulator_address(), 3).await;
    let store = s3_store_via(proxy, fast_retries(5));
    store
        .create("a/blob", body_from_bytes("survived"))
        .await
        .unwrap();
    assert!(
        accepted.load(Ordering::SeqCst) >= 4,
        "the create went through the failing connections first"
    );
    let (_, body) = store.get("a/blob").await.unwrap();
    assert_eq!(read_to_bytes(body).await.unwrap(), "survived");
    assert!(matches!(
        store.create("a/blob", body_from_bytes("again")).await,
        Err(StorageError::AlreadyExists { .. })
    ));
    store.delete("a/blob").await.unwrap();
}

/// A store that keeps answering 503 is `Unavailable` once the retries run out, after retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the emulators of tests/emulators/run-cloud-tests.sh"]
async fn s3_persistent_503s_are_unavailable_after_the_retries() {
    use std::sync::atomic::Ordering;
    let (proxy, accepted) = flaky_proxy(s3_emulator_address(), usize::MAX).await;
    let store = s3_store_via(proxy, fast_retries(3));
    let started = Instant::now();
    let created = store.create("a/blob", body_from_bytes("x")).await;
    assert!(
        matches!(&created, Err(StorageError::Unavailable { .. })),
        "{created:?}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 4, "one try and 3 retries");
    let read = store.get_range("a/blob", 0..1).await;
    assert!(
        matches!(read, Err(StorageError::Unavailable { .. })),
        "{read:?}"
    );
    let checked = store.check().await;
    assert!(
        matches!(checked, Err(StorageError::Unavailable { .. })),
        "{checked:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}
