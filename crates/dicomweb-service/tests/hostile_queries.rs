//! QIDO-RS values built to be expensive or to break the query engine: each is answered, or refused with
//! an `InvalidInput` (400) that names the parameter, never an index failure (500) or a long search.

mod common;

use std::time::{Duration, Instant};

use dicomweb_index::Index;
use dicomweb_service::{
    MAX_QUERY_VALUE_CHARS, MAX_QUERY_VALUES, MAX_QUERY_WILDCARDS, SearchResource, ServiceConfig,
    ServiceError, StudiesService,
};
use dicomweb_storage::open_store;
use proptest::prelude::*;

use common::{fresh_catalogue, store_file, test_file};

/// A service with the three sample instances stored, so that the index has terms to walk.
async fn service_with_instances(spool: &std::path::Path) -> StudiesService {
    let service = StudiesService::new(
        open_store("memory://").unwrap(),
        fresh_catalogue(),
        Index::open_in_ram().unwrap(),
        ServiceConfig::new(spool.to_path_buf()),
    );
    for name in ["red-triangle.dcm", "green-square.dcm", "blue-circle.dcm"] {
        store_file(&service, test_file(name)).await;
    }
    service
}

async fn search(
    service: &StudiesService,
    params: &[(&str, String)],
) -> Result<usize, ServiceError> {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    service
        .search(&SearchResource::Studies, &params, "http://h/dicom-web")
        .await
        .map(|results| results.len())
}

fn refusal(result: Result<usize, ServiceError>) -> String {
    match result {
        Err(ServiceError::InvalidInput(message)) => message,
        other => panic!("expected a 400 (InvalidInput), got {other:?}"),
    }
}

#[tokio::test]
async fn the_values_of_the_issue_are_refused_with_a_message_naming_the_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let service = service_with_instances(dir.path()).await;

    // `*a` x53 then `b`: the regex used to exceed tantivy's automaton size (a 500 quoting internal terms).
    let many_wildcards = format!("{}b", "*a".repeat(53));
    let message = refusal(search(&service, &[("PatientName", many_wildcards)]).await);
    assert!(
        message.contains("PatientName") && message.contains("53 wildcards"),
        "{message}"
    );

    // 973 letters, fuzzy and as a prefix.
    let long = "x".repeat(973);
    let message = refusal(
        search(
            &service,
            &[
                ("fuzzymatching", "true".into()),
                ("PatientName", long.clone()),
            ],
        )
        .await,
    );
    assert!(
        message.contains("PatientName") && message.contains("973 characters"),
        "{message}"
    );
    let message = refusal(search(&service, &[("PatientID", format!("{long}*"))]).await);
    assert!(
        message.contains("PatientID") && message.contains("974 characters"),
        "{message}"
    );

    // 120 values of `(*a)^48 b` with multiplevaluematching: refused for their count before any is run.
    let expensive = format!("{}b", "*a".repeat(48));
    let values = vec![expensive; 120].join("\\");
    let started = Instant::now();
    let message = refusal(
        search(
            &service,
            &[
                ("multiplevaluematching", "true".into()),
                ("PatientName", values),
            ],
        )
        .await,
    );
    assert!(
        message.contains("120 values") && message.contains("PatientName"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));

    // Internal term formats (`00100010=` and the like) never reach a client.
    assert!(!message.contains("00100010="), "{message}");
}

#[tokio::test]
async fn values_at_the_bounds_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let service = service_with_instances(dir.path()).await;
    let longest = "y".repeat(MAX_QUERY_VALUE_CHARS);
    assert_eq!(
        search(&service, &[("PatientID", longest)]).await.unwrap(),
        0
    );
    let values = vec!["NOBODY"; MAX_QUERY_VALUES].join("\\");
    let params = [
        ("multiplevaluematching", "true".into()),
        ("PatientID", values),
    ];
    assert_eq!(search(&service, &params).await.unwrap(), 0);
    let wildcards = "*".repeat(MAX_QUERY_WILDCARDS);
    assert_eq!(
        search(&service, &[("PatientID", wildcards)]).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn a_pattern_within_the_bounds_that_the_engine_cannot_compile_is_a_400_naming_the_attribute()
{
    let dir = tempfile::tempdir().unwrap();
    let service = service_with_instances(dir.path()).await;
    // 16 wildcards between long runs of 3-byte characters: within every bound, over the automaton limit.
    let segment = "中".repeat(14);
    let pattern = format!(
        "{segment}{}",
        format!("*{segment}").repeat(MAX_QUERY_WILDCARDS)
    );
    assert!(pattern.chars().count() <= MAX_QUERY_VALUE_CHARS);
    let message = refusal(search(&service, &[("StudyDescription", pattern)]).await);
    assert!(
        message.contains("StudyDescription") && message.contains("too complex"),
        "{message}"
    );
    assert!(!message.contains("=.*"), "no internal regex in {message}");
}

/// Values mixing wildcards, separators and multi-byte characters.
fn query_value() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("*"),
            Just("?"),
            Just("a"),
            Just("é"),
            Just("中"),
            Just("^"),
            Just(" "),
            Just("."),
            Just("\\"),
            Just("-"),
            Just("0"),
        ],
        0..300,
    )
    .prop_map(|parts| parts.concat())
}

/// One service for every fuzz case (storing the samples once), on a runtime of its own.
fn shared_service() -> &'static (tokio::runtime::Runtime, StudiesService, tempfile::TempDir) {
    static SHARED: std::sync::OnceLock<(
        tokio::runtime::Runtime,
        StudiesService,
        tempfile::TempDir,
    )> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let service = runtime.block_on(service_with_instances(dir.path()));
        (runtime, service, dir)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Fuzzing: whatever the values, a search is answered or refused as the client's error, never an
    /// index failure, and quickly.
    #[test]
    fn any_wildcard_fuzzy_or_multiple_value_is_answered_or_refused_as_a_client_error(
        value in query_value(),
        attribute in prop_oneof![
            Just("PatientName"),
            Just("PatientID"),
            Just("StudyDescription"),
            Just("ModalitiesInStudy"),
            Just("StudyDate"),
            Just("AccessionNumber"),
        ],
        fuzzy in any::<bool>(),
        multiple in any::<bool>(),
    ) {
        let (runtime, service, _) = shared_service();
        let params = [
            ("fuzzymatching", fuzzy.to_string()),
            ("multiplevaluematching", multiple.to_string()),
            (attribute, value.clone()),
        ];
        let started = Instant::now();
        let outcome = runtime.block_on(search(service, &params));
        let took = started.elapsed();
        match outcome {
            Ok(_) | Err(ServiceError::InvalidInput(_)) => {}
            Err(other) => prop_assert!(false, "{attribute}={value:?}: {other:?}"),
        }
        prop_assert!(took < Duration::from_secs(2), "{attribute}={value:?} took {took:?}");
    }
}
