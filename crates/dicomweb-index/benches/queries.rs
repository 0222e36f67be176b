//! Criterion micro-benchmarks of index queries over an in-memory catalogue of 10,000 instances (100 studies of 10
//! series of 10 instances, 50 patients): study searches by each kind of matcher, one instance by UID, the
//! instances of a study, and a page of the change feed; and the same study search with 250 acknowledged stores
//! the index has not applied yet laid over it (`Index::search_including`, what a search pays while clients
//! store). `cargo bench -p dicomweb-index`.

use criterion::{Criterion, criterion_group, criterion_main};
use dicomweb_index::{
    Filter, Index, IndexChange, Level, Matcher, Scope, SearchQuery, TAG_MODALITIES_IN_STUDY,
    date_key,
};
use std::hint::black_box;

const INSTANCES: u64 = 10_000;
#[path = "support/records.rs"]
mod records;
use records::{PATIENT_ID, PATIENT_NAME, STUDY_DATE, record, study_uid};

fn catalogue(runtime: &tokio::runtime::Runtime) -> Index {
    let index = Index::open_in_ram().expect("an in-memory index");
    runtime.block_on(async {
        let tasks: Vec<_> = (0..INSTANCES)
            .map(|i| {
                let index = index.clone();
                tokio::spawn(async move { index.insert(record(i)).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("the insert task").expect("an insert");
        }
    });
    index
}

fn study_search(filter: Filter) -> SearchQuery {
    SearchQuery {
        level: Level::Study,
        filters: vec![filter],
        offset: 0,
        limit: 100,
    }
}

fn filter(tag: u32, matcher: Matcher) -> Filter {
    Filter {
        level: Level::Study,
        tag,
        matcher,
        or_empty: false,
    }
}

fn queries(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let index = catalogue(&runtime);
    let mut group = c.benchmark_group("index (10,000 instances)");
    let searches = [
        (
            "study search PatientID (exact)",
            filter(PATIENT_ID, Matcher::Exact(vec!["PAT007".into()])),
        ),
        (
            "study search PatientName prefix (person name)",
            filter(
                PATIENT_NAME,
                Matcher::PersonName {
                    values: vec!["mul*".into()],
                    fuzzy: false,
                },
            ),
        ),
        (
            "study search StudyDate range",
            filter(
                STUDY_DATE,
                Matcher::Range {
                    lower: date_key("20240301"),
                    upper: date_key("20240430"),
                },
            ),
        ),
        (
            "study search ModalitiesInStudy",
            filter(TAG_MODALITIES_IN_STUDY, Matcher::Exact(vec!["MR".into()])),
        ),
    ];
    for (name, filter) in searches {
        let query = study_search(filter);
        group.bench_function(name, |b| {
            b.iter(|| index.search(black_box(&query)).expect("a search"))
        });
    }
    // 250 stores after the watermark: 50 into each of two committed studies, the rest into new studies.
    let applied = index.applied_sequence();
    let unapplied: Vec<IndexChange> = (0..250u64)
        .map(|k| {
            let mut record = record(INSTANCES + k);
            if k < 100 {
                record.study_instance_uid = study_uid(k / 50 * 7);
            }
            IndexChange::Insert {
                sequence: applied + 1 + k,
                record,
            }
        })
        .collect();
    // Between two searches of a store storm, one more store arrives: the summaries of the study it
    // touches are computed again, those of the others are kept from the previous search.
    let mut one_more = unapplied.clone();
    let mut record = record(INSTANCES + 250);
    record.study_instance_uid = study_uid(7);
    one_more.push(IndexChange::Insert {
        sequence: applied + 251,
        record,
    });
    let query = study_search(filter(PATIENT_ID, Matcher::Exact(vec!["PAT007".into()])));
    let mut turn = false;
    group.bench_function(
        "study search PatientID (exact), 250 unapplied stores laid over, 1 new per search",
        |b| {
            b.iter(|| {
                turn = !turn;
                let changes = if turn { &one_more } else { &unapplied };
                index
                    .search_including(black_box(&query), changes)
                    .expect("a search")
            })
        },
    );
    group.bench_function("instances of a study", |b| {
        let scope = Scope::Study(study_uid(42));
        b.iter(|| index.instances(black_box(&scope)).expect("instances"))
    });
    group.finish();
    runtime.block_on(index.close()).expect("closing the index");
}

criterion_group!(benches, queries);
criterion_main!(benches);
