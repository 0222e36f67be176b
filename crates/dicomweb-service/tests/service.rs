//! The studies service over in-memory storage and index: behaviour that needs no HTTP.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dicomweb_index::{Index, Scope};
use dicomweb_service::{
    FailureReason, InstanceOutcome, SearchResource, ServiceConfig, StudiesService,
    TransferSyntaxRequest,
};
use dicomweb_storage::{BlobStore, open_store};
use serde_json::Value;

use common::{fresh_catalogue, test_file as sample};

const STUDY: &str = "1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420";
const SERIES_RED_GREEN: &str = "1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652";
const SOP_RED: &str = "1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395";

fn body(bytes: Bytes) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    // Small uneven chunks, as a network would deliver them.
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(7919)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}

fn service(blobs: Arc<dyn BlobStore>, spool: &std::path::Path) -> StudiesService {
    StudiesService::new(
        blobs,
        fresh_catalogue(),
        Index::open_in_ram().expect("index"),
        ServiceConfig::new(spool.to_path_buf()),
    )
}

async fn store(service: &StudiesService, name: &str) -> InstanceOutcome {
    service
        .store_instance(None, body(sample(name)))
        .await
        .expect("request body is fine")
}

fn reason(outcome: &InstanceOutcome) -> Option<FailureReason> {
    match outcome {
        InstanceOutcome::Failed { reason, .. } => Some(*reason),
        InstanceOutcome::Stored { .. } => None,
    }
}

#[tokio::test]
async fn storing_twice_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(open_store("memory://").unwrap(), dir.path());
    assert_eq!(reason(&store(&service, "red-triangle.dcm").await), None);
    assert_eq!(
        reason(&store(&service, "red-triangle.dcm").await),
        Some(FailureReason::AlreadyStored)
    );
}

#[tokio::test]
async fn large_instances_are_spooled_to_disk_and_stored_intact() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = open_store("memory://").unwrap();
    let mut config = ServiceConfig::new(dir.path().join("spool"));
    config.memory_spool_limit = 64 * 1024; // force the disk path for a 2.9 MB sample
    let service = StudiesService::new(
        blobs,
        fresh_catalogue(),
        Index::open_in_ram().unwrap(),
        config,
    );
    assert_eq!(reason(&store(&service, "red-triangle.dcm").await), None);
    let records = service
        .instances_in(&Scope::Instance(
            STUDY.into(),
            SERIES_RED_GREEN.into(),
            SOP_RED.into(),
        ))
        .await
        .unwrap();
    let content = service.open_instance(records[0].clone()).await.unwrap();
    let stored = dicomweb_storage::read_to_bytes(content.body).await.unwrap();
    assert_eq!(stored[128..], sample("red-triangle.dcm")[128..]);
    assert!(
        std::fs::read_dir(dir.path().join("spool"))
            .unwrap()
            .next()
            .is_none(),
        "spool files are removed"
    );
}

#[tokio::test]
async fn files_no_catalogue_record_names_are_swept_and_the_catalogued_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = open_store("memory://").unwrap();
    // Crashes between an upload and its catalogue commit leave files that no record names: one of an old
    // version, one of the first key layout.
    let orphans = [
        dicomweb_service::keys::instance_key(STUDY, SERIES_RED_GREEN, SOP_RED, 1),
        format!("studies/{STUDY}/series/{SERIES_RED_GREEN}/instances/{SOP_RED}.dcm"),
    ];
    for key in &orphans {
        blobs
            .create(
                key,
                dicomweb_storage::body_from_bytes(Bytes::from_static(b"stale")),
            )
            .await
            .unwrap();
    }
    let service = service(blobs.clone(), dir.path());
    assert_eq!(reason(&store(&service, "red-triangle.dcm").await), None);
    let report = service.sweep_storage(Duration::ZERO).await.unwrap();
    assert_eq!((report.files_seen, report.orphans_removed), (3, 2));
    for key in &orphans {
        assert!(blobs.head(key).await.is_err(), "{key} is removed");
    }
    let content = service
        .open_instance(
            service
                .instances_in(&Scope::Instance(
                    STUDY.into(),
                    SERIES_RED_GREEN.into(),
                    SOP_RED.into(),
                ))
                .await
                .unwrap()
                .remove(0),
        )
        .await
        .unwrap();
    let stored = dicomweb_storage::read_to_bytes(content.body).await.unwrap();
    assert_eq!(
        stored[128..],
        sample("red-triangle.dcm")[128..],
        "the catalogued file is kept"
    );
}

#[tokio::test]
async fn a_delete_removes_the_files_before_it_answers_and_leaves_nothing_pending() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = open_store("memory://").unwrap();
    let service = service(blobs.clone(), dir.path());
    for name in ["red-triangle.dcm", "green-square.dcm", "blue-circle.dcm"] {
        assert_eq!(reason(&store(&service, name).await), None);
    }
    assert_eq!(service.delete(Scope::Study(STUDY.into())).await.unwrap(), 3);
    let left: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(blobs.list("studies/"))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert!(
        service
            .catalogue()
            .pending_blob_deletions()
            .await
            .unwrap()
            .is_empty()
    );
    let report = service.recover().await.unwrap();
    assert_eq!(report.pending_deletions_completed, 0);
}

#[tokio::test]
async fn a_lost_index_is_rebuilt_from_storage() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = open_store("memory://").unwrap();
    let first = service(blobs.clone(), dir.path());
    for name in ["red-triangle.dcm", "green-square.dcm", "blue-circle.dcm"] {
        assert_eq!(reason(&store(&first, name).await), None);
    }
    let metadata_before = first
        .metadata(&Scope::Study(STUDY.into()), "http://h")
        .await
        .unwrap()
        .into_bytes()
        .await
        .unwrap();
    // Something that is not an instance sits among the files: it is skipped, not fatal.
    blobs
        .create(
            "studies/1.2/series/3.4/instances/5.6.dcm",
            dicomweb_storage::body_from_bytes(Bytes::from_static(b"junk")),
        )
        .await
        .unwrap();

    let second = service(blobs, dir.path());
    assert!(second.catalogue_is_empty().await.unwrap());
    assert!(second.storage_has_instances().await.unwrap());
    let mut reports = 0;
    let totals = second
        .rebuild_catalogue(Duration::from_secs(3600), |_| reports += 1)
        .await
        .unwrap();
    assert_eq!((totals.seen, totals.added, totals.unreadable), (4, 3, 1));
    assert_eq!(reports, 1, "a final report");
    assert_eq!(
        second
            .metadata(&Scope::Study(STUDY.into()), "http://h")
            .await
            .unwrap()
            .into_bytes()
            .await
            .unwrap()
            .len(),
        metadata_before.len()
    );
    let frames = second
        .frames(
            &Scope::Instance(STUDY.into(), SERIES_RED_GREEN.into(), SOP_RED.into()),
            &[1],
            &[TransferSyntaxRequest::AsStored.into()],
        )
        .await
        .unwrap()
        .into_frames()
        .await
        .unwrap();
    assert_eq!(frames[0].len(), 979 * 985 * 3);

    // Running it again adds nothing.
    let again = second
        .rebuild_catalogue(Duration::from_secs(3600), |_| {})
        .await
        .unwrap();
    assert_eq!((again.added, again.already_catalogued), (0, 3));
}

async fn search(
    service: &StudiesService,
    resource: SearchResource,
    params: &[(&str, &str)],
) -> Vec<Value> {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let results = service
        .search(&resource, &params, "http://h/dicom-web")
        .await
        .expect("a valid search");
    // The response body is the array of the results, each a JSON object.
    let body: Vec<Value> =
        serde_json::from_slice(&dicomweb_service::search::json_array(&results)).unwrap();
    assert_eq!(body.len(), results.len());
    for (result, parsed) in results.iter().zip(&body) {
        assert_eq!(&result.to_value(), parsed);
        assert!(parsed.is_object());
    }
    body
}

fn value<'a>(result: &'a Value, tag: &str) -> &'a Value {
    &result[tag]["Value"][0]
}

#[tokio::test]
async fn search_results_carry_the_levels_attributes_and_the_computed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(open_store("memory://").unwrap(), dir.path());
    for name in ["red-triangle.dcm", "green-square.dcm", "blue-circle.dcm"] {
        assert_eq!(reason(&store(&service, name).await), None);
    }

    let studies = search(&service, SearchResource::Studies, &[]).await;
    assert_eq!(studies.len(), 1);
    let study = &studies[0];
    assert_eq!(value(study, "0020000D"), STUDY);
    assert_eq!(value(study, "00201206"), 2, "NumberOfStudyRelatedSeries");
    assert_eq!(value(study, "00201208"), 3, "NumberOfStudyRelatedInstances");
    assert_eq!(
        value(study, "00081190"),
        &format!("http://h/dicom-web/studies/{STUDY}")
    );
    assert_eq!(value(study, "00080056"), "ONLINE");
    assert!(study["00080061"]["Value"].is_array(), "ModalitiesInStudy");
    assert!(
        study.get("00280010").is_none(),
        "Rows is not a study attribute"
    );

    let series = search(
        &service,
        SearchResource::Series { study: None },
        &[("SeriesInstanceUID", SERIES_RED_GREEN)],
    )
    .await;
    assert_eq!(series.len(), 1);
    assert_eq!(
        value(&series[0], "00201209"),
        2,
        "NumberOfSeriesRelatedInstances"
    );
    assert!(series[0].get("00201208").is_none(), "not asked for");
    // Study attributes of a series are the study's.
    assert_eq!(series[0]["00100020"], study["00100020"]);

    let instances = search(
        &service,
        SearchResource::Instances {
            study: None,
            series: None,
        },
        &[
            ("SOPInstanceUID", SOP_RED),
            ("includefield", "NumberOfStudyRelatedInstances,Rows"),
        ],
    )
    .await;
    assert_eq!(instances.len(), 1);
    let instance = &instances[0];
    assert_eq!(value(instance, "00080018"), SOP_RED);
    assert_eq!(value(instance, "0020000E"), SERIES_RED_GREEN);
    assert_eq!(value(instance, "00201208"), 3);
    assert!(value(instance, "00280010").is_u64(), "Rows, asked for");
    assert_eq!(
        value(instance, "00081190"),
        &format!(
            "http://h/dicom-web/studies/{STUDY}/series/{SERIES_RED_GREEN}/instances/{SOP_RED}"
        )
    );
    assert_eq!(instance["00100010"], study["00100010"]);

    let everything = search(
        &service,
        SearchResource::Instances {
            study: Some(STUDY.into()),
            series: None,
        },
        &[("includefield", "all")],
    )
    .await;
    assert_eq!(everything.len(), 3);
    assert!(everything.iter().all(|i| i.get("00280010").is_some()));
}

/// Every instance, as an instance-level search finds them.
async fn all_instances(service: &StudiesService) -> Vec<Value> {
    let every = SearchResource::Instances {
        study: None,
        series: None,
    };
    search(service, every, &[]).await
}

#[tokio::test]
async fn searches_see_acknowledged_stores_and_deletes_without_waiting_for_an_index_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServiceConfig::new(dir.path().to_path_buf());
    // No background update during the test: only the searches could make the index commit.
    config.index_commit_delay = Duration::from_secs(3600);
    let service = StudiesService::new(
        open_store("memory://").unwrap(),
        fresh_catalogue(),
        Index::open_in_ram().expect("index"),
        config,
    );
    assert_eq!(reason(&store(&service, "red-triangle.dcm").await), None);
    service.sync_search_index().await.unwrap();
    let commits = service.index().stats().commits;

    // Stored, not yet in the index: every level finds it, with counts that include it.
    for name in ["green-square.dcm", "blue-circle.dcm"] {
        assert_eq!(reason(&store(&service, name).await), None);
    }
    let studies = search(&service, SearchResource::Studies, &[]).await;
    assert_eq!(
        value(&studies[0], "00201208"),
        3,
        "NumberOfStudyRelatedInstances"
    );
    assert_eq!(
        value(&studies[0], "00201206"),
        2,
        "NumberOfStudyRelatedSeries"
    );
    let series = search(
        &service,
        SearchResource::Series { study: None },
        &[("SeriesInstanceUID", SERIES_RED_GREEN)],
    )
    .await;
    assert_eq!(
        value(&series[0], "00201209"),
        2,
        "NumberOfSeriesRelatedInstances"
    );
    let instances = all_instances(&service).await;
    assert_eq!(instances.len(), 3);

    // Deleted, not yet removed from the index: no longer found.
    service
        .delete(Scope::Instance(
            STUDY.into(),
            SERIES_RED_GREEN.into(),
            SOP_RED.into(),
        ))
        .await
        .unwrap();
    let instances = all_instances(&service).await;
    assert_eq!(instances.len(), 2);
    assert!(instances.iter().all(|i| value(i, "00080018") != SOP_RED));
    let studies = search(&service, SearchResource::Studies, &[]).await;
    assert_eq!(
        value(&studies[0], "00201208"),
        2,
        "NumberOfStudyRelatedInstances"
    );
    assert_eq!(
        service.index().stats().commits,
        commits,
        "the searches laid the changes over the index instead of committing them"
    );

    // Once the index applies them, the answers are the same.
    service.sync_search_index().await.unwrap();
    assert!(service.index().stats().commits > commits);
    let after = all_instances(&service).await;
    assert_eq!(after, instances);
}

/// The red triangle sample as another SOP instance of the same series: `n` replaces the last five digits of its
/// SOPInstanceUID (same length, so the file stays valid).
fn red_triangle_numbered(n: u32) -> Bytes {
    let bytes = sample("red-triangle.dcm");
    let other = format!("{}{n:05}", &SOP_RED[..SOP_RED.len() - 5]);
    let mut out = bytes.to_vec();
    let needle = SOP_RED.as_bytes();
    let mut at = 0;
    while let Some(found) = out[at..].windows(needle.len()).position(|w| w == needle) {
        out[at + found..at + found + needle.len()].copy_from_slice(other.as_bytes());
        at += found + needle.len();
    }
    Bytes::from(out)
}

fn sop_numbered(n: u32) -> String {
    format!("{}{n:05}", &SOP_RED[..SOP_RED.len() - 5])
}

/// What the writers of the race test have been told, by SOPInstanceUID.
#[derive(Default)]
struct Acknowledged {
    stored: std::collections::HashSet<String>,
    deleting: std::collections::HashSet<String>,
    deleted: std::collections::HashSet<String>,
}

#[test]
fn searches_racing_stores_deletes_and_index_commits_see_every_acknowledged_write() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServiceConfig::new(dir.path().to_path_buf());
        // Index commits land all the time, between and during the searches.
        config.index_commit_delay = Duration::from_millis(3);
        let service = Arc::new(StudiesService::new(
            open_store("memory://").unwrap(),
            fresh_catalogue(),
            Index::open_in_ram().expect("index"),
            config,
        ));
        let acknowledged = Arc::new(std::sync::Mutex::new(Acknowledged::default()));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

        let storers: Vec<_> = (0..4u32)
            .map(|storer| {
                let (service, acknowledged) = (service.clone(), acknowledged.clone());
                tokio::spawn(async move {
                    for k in 0..40u32 {
                        let n = storer * 1000 + k;
                        let outcome = service
                            .store_instance(None, body(red_triangle_numbered(n)))
                            .await
                            .expect("a valid body");
                        assert_eq!(reason(&outcome), None, "instance {n}");
                        acknowledged.lock().unwrap().stored.insert(sop_numbered(n));
                    }
                })
            })
            .collect();
        let deleter = {
            let (service, acknowledged, done) =
                (service.clone(), acknowledged.clone(), done.clone());
            tokio::spawn(async move {
                let mut deletions = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) && deletions < 40 {
                    let victim = {
                        let mut known = acknowledged.lock().unwrap();
                        let victim = known
                            .stored
                            .iter()
                            .find(|sop| !known.deleting.contains(*sop))
                            .cloned();
                        if let Some(sop) = &victim {
                            known.deleting.insert(sop.clone());
                        }
                        victim
                    };
                    let Some(sop) = victim else {
                        tokio::task::yield_now().await;
                        continue;
                    };
                    service
                        .delete(Scope::Instance(
                            STUDY.into(),
                            SERIES_RED_GREEN.into(),
                            sop.clone(),
                        ))
                        .await
                        .unwrap();
                    {
                        let mut known = acknowledged.lock().unwrap();
                        known.stored.remove(&sop);
                        known.deleted.insert(sop);
                    }
                    deletions += 1;
                    // Slower than the storers: most instances stay, and the searches have many to find.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let mut searches = 0;
        let mut storers = storers;
        loop {
            // What was acknowledged before the search started must be seen by it.
            let (must_find, must_not_find) = {
                let known = acknowledged.lock().unwrap();
                let must_find: Vec<String> = known
                    .stored
                    .iter()
                    .filter(|sop| !known.deleting.contains(*sop))
                    .cloned()
                    .collect();
                (must_find, known.deleted.clone())
            };
            let params = [("limit", "200")];
            let instances = search(
                &service,
                SearchResource::Instances {
                    study: None,
                    series: None,
                },
                &params,
            )
            .await;
            let found: std::collections::HashSet<String> = instances
                .iter()
                .map(|i| value(i, "00080018").as_str().unwrap().to_owned())
                .collect();
            // A delete that started while the search ran may or may not be seen by it.
            let deleting_now = acknowledged.lock().unwrap().deleting.clone();
            for sop in must_find.iter().filter(|sop| !deleting_now.contains(*sop)) {
                assert!(
                    found.contains(sop),
                    "search {searches}: stored {sop} not found"
                );
            }
            for sop in &must_not_find {
                assert!(
                    !found.contains(sop),
                    "search {searches}: deleted {sop} found"
                );
            }
            searches += 1;
            if storers.iter().all(|s| s.is_finished()) {
                break;
            }
            tokio::task::yield_now().await;
        }
        for storer in storers.drain(..) {
            storer.await.unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        deleter.await.unwrap();
        assert!(searches > 5, "the searches ran while the writers wrote");
        // Settled: the index alone answers the same.
        service.sync_search_index().await.unwrap();
        let stored = acknowledged.lock().unwrap().stored.len();
        let studies = search(&service, SearchResource::Studies, &[]).await;
        assert_eq!(
            value(&studies[0], "00201208"),
            stored,
            "NumberOfStudyRelatedInstances"
        );
    });
}
