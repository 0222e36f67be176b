//! The writer thread runs at the nice value asked for (its own test binary: no other catalogue's writer runs
//! in this process).
#![cfg(target_os = "linux")]

use dicomweb_catalogue::{Catalogue, EmbeddedCatalogue, EmbeddedOptions};

/// Nice values of this process's threads whose name starts with `prefix` (from `/proc`).
fn nice_of_threads_named(prefix: &str) -> Vec<i64> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let path = task.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            if !name.starts_with(prefix) {
                return None;
            }
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // Field 19 (nice) is the 17th after the parenthesised command name.
            stat[stat.rfind(')')? + 2..]
                .split(' ')
                .nth(16)?
                .parse()
                .ok()
        })
        .collect()
}

#[tokio::test]
async fn the_writer_thread_yields_the_cpu_when_asked_and_the_callers_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let catalogue = EmbeddedCatalogue::open_with(
        dir.path(),
        EmbeddedOptions {
            writer_niceness: 4,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    // A commit has gone through the writer, so it has started and set its priority.
    let version = catalogue.allocate_version().await.unwrap();
    let record = dicomweb_catalogue::conformance::record("1.2", "1.2.3", "1.2.3.4", 1, "A^B");
    catalogue.commit_store(version, record).await.unwrap();
    assert_eq!(nice_of_threads_named("dicomweb-catalo"), [4]);
    let own_nice = rustix::process::getpriority_process(None).unwrap();
    assert_eq!(own_nice, 0, "the caller's thread is untouched");
}
