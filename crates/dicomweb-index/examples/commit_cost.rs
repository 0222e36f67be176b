//! Measurement: the CPU one indexed instance costs, by how many instances share one index commit.
//!
//! `cargo run --release -p dicomweb-index --example commit_cost -- 250` applies 40,000 inserts to an on-disk
//! index in batches of 250 (one tantivy commit each: a new segment, its term dictionary and doc store, and the
//! merges that follow), waits for the merges, and prints the process's CPU time (every thread: tantivy indexes,
//! merges and compresses on threads of its own) per instance. CPU time, not wall time: it moves less with what
//! else a shared machine runs. On 2026-12-03 here: batches of 250 cost 79-86 us per instance, of 1000 35-36 us, of
//! 4000 34 us, so a commit has a fixed cost of about 11 ms: what `ServiceConfig::index_commit_delay` trades
//! against the size of the overlay searches lay over the index.

use dicomweb_index::{Index, IndexChange};

#[path = "../benches/support/records.rs"]
mod records;
use records::record;

/// CPU time (user and system) of this process so far, in milliseconds.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of proc(5), counted after the command name; clock ticks of 10 ms.
    (ticks(11) + ticks(12)) * 10.0
}

fn main() {
    let batch: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .filter(|b| *b > 0)
        .unwrap_or(250);
    let total: u64 = 40_000 / batch * batch;
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let index = Index::open(dir.path()).expect("an index");
    let before = cpu_ms();
    let started = std::time::Instant::now();
    runtime.block_on(async {
        for b in 0..total / batch {
            let changes = (b * batch..(b + 1) * batch)
                .map(|i| IndexChange::Insert {
                    sequence: i + 1,
                    record: record(i),
                })
                .collect();
            index.apply(changes).await.expect("an index commit");
        }
    });
    let applied = started.elapsed();
    // Merges run after the last commit: counted too.
    std::thread::sleep(std::time::Duration::from_secs(3));
    println!(
        "batches of {batch}: {:.1} us of CPU per instance ({total} instances applied in {:.2} s)",
        (cpu_ms() - before) * 1000.0 / total as f64,
        applied.as_secs_f64()
    );
}
