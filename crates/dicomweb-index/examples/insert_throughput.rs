//! Micro-benchmark: N concurrent inserts into an on-disk index, then a few reads.
//!
//! `cargo run -p dicomweb-index --example insert_throughput -- 5000` (use `--release` for real
//! numbers). Prints throughput and how many commits group commit needed. With a second
//! argument `sequential`, inserts one at a time instead: every insert is a commit of its own,
//! so the figure is the latency of one commit.

use std::time::Instant;

use dicomweb_index::{
    Filter, Index, InstanceRecord, Level, Matcher, Scope, SearchQuery, TAG_MODALITIES_IN_STUDY,
};

fn record(i: u64) -> InstanceRecord {
    InstanceRecord {
        study_instance_uid: format!("1.2.{}", i / 100),
        series_instance_uid: format!("1.2.{}.{}", i / 100, i / 10),
        sop_instance_uid: format!("1.2.{}.{}.{i}", i / 100, i / 10),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
        transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
        blob_key: format!("blobs/{i}"),
        size: 500_000,
        stored_at: time::OffsetDateTime::now_utc(),
        metadata: vec![b' '; 4096],
        pixel_layout: None,
        attributes: vec![
            (0x0010_0020, vec![format!("PAT{}", i / 1000)]),
            (0x0008_0060, vec!["CT".into()]),
            (0x0020_0013, vec![(i % 10).to_string()]),
        ],
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(2000);
    let dir = tempfile::tempdir()?;
    let index = Index::open(dir.path())?;

    let sequential = std::env::args().nth(2).as_deref() == Some("sequential");
    let started = Instant::now();
    if sequential {
        for i in 0..count {
            index.insert(record(i)).await?;
        }
    } else {
        let tasks: Vec<_> = (0..count)
            .map(|i| {
                let index = index.clone();
                tokio::spawn(async move { index.insert(record(i)).await })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
    }
    let elapsed = started.elapsed();
    let stats = index.stats();
    println!(
        "{count} inserts in {elapsed:?} ({:.0}/s), {} commits",
        count as f64 / elapsed.as_secs_f64(),
        stats.commits
    );

    let started = Instant::now();
    let studies = index.search(&SearchQuery {
        level: Level::Study,
        filters: vec![Filter {
            level: Level::Study,
            tag: TAG_MODALITIES_IN_STUDY,
            matcher: Matcher::Exact(vec!["CT".into()]),
            or_empty: false,
        }],
        offset: 0,
        limit: 100,
    })?;
    println!(
        "study search: {} hits in {:?}",
        studies.len(),
        started.elapsed()
    );

    let started = Instant::now();
    let series = index.instances(&Scope::Study("1.2.0".into()))?;
    println!(
        "instances of a study: {} in {:?}",
        series.len(),
        started.elapsed()
    );

    index.close().await?;
    Ok(())
}
