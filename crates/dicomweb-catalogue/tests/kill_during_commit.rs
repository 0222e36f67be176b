//! `kill -9` of a process writing to the embedded catalogue, at random moments: during redo log appends,
//! during checkpoints (every 15 ms here) and right after a replay. After each kill the catalogue is reopened
//! and must hold exactly what was acknowledged: every acknowledged store with its record and its copy (unless
//! acknowledged as released or deleted), no acknowledged delete undone, and a gap-free change feed whose
//! entries show their own metadata.
//!
//! The writer is this test binary run again as a child process (`child_writer`), which prints one line per
//! acknowledged request; the parent counts lines, kills, and checks.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dicomweb_catalogue::conformance::record;
use dicomweb_catalogue::{
    Catalogue, ChangeAction, ChangeFeedEntry, ChangeQuery, EmbeddedCatalogue, EmbeddedOptions,
    Scope,
};

const DIR_VAR: &str = "DICOMWEB_CATALOGUE_CRASH_DIR";
const START_VAR: &str = "DICOMWEB_CATALOGUE_CRASH_START";
const WRITERS: u64 = 4;

fn uids(i: u64) -> (String, String, String) {
    let study = format!("1.{}", i / 40);
    let series = format!("{study}.1");
    let sop = format!("{series}.{i}");
    (study, series, sop)
}

fn copy_of(i: u64) -> Bytes {
    Bytes::from(vec![(i % 251) as u8; 2000 + (i % 7) as usize * 1000])
}

/// The writer: run only as the child of `acknowledged_writes_survive_kill_9_at_any_moment`.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let start: u64 = std::env::var(START_VAR).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let catalogue = EmbeddedCatalogue::open_with(
            std::path::Path::new(&dir),
            EmbeddedOptions {
                checkpoint_interval: Duration::from_millis(15),
                ..EmbeddedOptions::default()
            },
        )
        .unwrap();
        println!("opened");
        let writers = (0..WRITERS).map(|writer| {
            let catalogue = catalogue.clone();
            tokio::spawn(async move {
                let mut i = start + writer;
                // Until the parent kills the process.
                loop {
                    let (study, series, sop) = uids(i);
                    let version = catalogue.allocate_version().await.unwrap();
                    let mut record = record(&study, &series, &sop, i as u32, &format!("N{i}"));
                    record.blob_key = record
                        .blob_key
                        .replace(".dcm", &format!("_{version:016x}.dcm"));
                    let key = record.blob_key.clone();
                    let sequence = catalogue
                        .commit_store_with_copy(version, record, copy_of(i))
                        .await
                        .unwrap();
                    println!("stored {i} {sequence} {key}");
                    if i.is_multiple_of(5) {
                        catalogue.copies_published(vec![key]).await.unwrap();
                        println!("released {i}");
                    }
                    if i.is_multiple_of(7) && i >= start + WRITERS {
                        let gone = i - WRITERS;
                        let (study, series, sop) = uids(gone);
                        catalogue
                            .commit_delete(&Scope::Instance(study, series, sop))
                            .await
                            .unwrap();
                        println!("deleted {gone}");
                    }
                    i += WRITERS;
                }
            })
        });
        futures::future::join_all(writers.collect::<Vec<_>>()).await;
    });
}

/// What the children acknowledged, over every run.
#[derive(Default)]
struct Acknowledged {
    /// Instance number → (sequence of its create entry, blob key).
    stored: BTreeMap<u64, (u64, String)>,
    released: BTreeSet<u64>,
    deleted: BTreeSet<u64>,
}

impl Acknowledged {
    /// A request sent but not acknowledged may or may not have happened: the child releases the copy of
    /// every fifth instance after storing it, and deletes instance `i - WRITERS` after storing `i` when `i`
    /// is a multiple of 7.
    fn may_be_released(&self, i: u64) -> bool {
        i.is_multiple_of(5)
    }

    fn may_be_deleted(&self, i: u64) -> bool {
        (i + WRITERS).is_multiple_of(7) && self.stored.contains_key(&(i + WRITERS))
    }

    fn note(&mut self, line: &str) {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["stored", i, sequence, key] => {
                self.stored.insert(
                    i.parse().unwrap(),
                    (sequence.parse().unwrap(), key.to_string()),
                );
            }
            ["released", i] => {
                self.released.insert(i.parse().unwrap());
            }
            ["deleted", i] => {
                self.deleted.insert(i.parse().unwrap());
            }
            _ => {}
        }
    }
}

/// Runs one child from instance `start`, kills it once it has acknowledged `acks` requests (or when
/// `acks` is 0, as soon as it has opened the catalogue: a kill during or right after replay).
fn run_child_and_kill(dir: &std::path::Path, start: u64, acks: usize, seen: &mut Acknowledged) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .env(START_VAR, start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut counted = 0;
    let mut opened = false;
    while let Some(Ok(line)) = lines.next() {
        // libtest prints "test child_writer ... " before the test's first line.
        opened |= line.ends_with("opened");
        if line.starts_with("stored") || line.starts_with("released") || line.starts_with("deleted")
        {
            counted += 1;
        }
        seen.note(&line);
        if (opened && counted >= acks) || Instant::now() > deadline {
            break;
        }
    }
    child.kill().unwrap();
    // Whatever it printed before it died was acknowledged too.
    for line in lines.map_while(Result::ok) {
        seen.note(&line);
    }
    let status = child.wait().unwrap();
    assert!(
        opened,
        "the child never opened the catalogue ({status}): {}",
        std::io::read_to_string(child.stderr.take().unwrap()).unwrap_or_default()
    );
}

/// Up to `limit` change feed entries after `after`, with metadata.
async fn feed_page(
    catalogue: &EmbeddedCatalogue,
    after: u64,
    limit: usize,
) -> Vec<ChangeFeedEntry> {
    catalogue
        .changes(&ChangeQuery {
            after_sequence: after,
            limit,
            include_metadata: true,
            ..ChangeQuery::default()
        })
        .await
        .unwrap()
}

async fn check(catalogue: &EmbeddedCatalogue, seen: &Acknowledged, round: usize) {
    for (i, (sequence, key)) in &seen.stored {
        let (study, series, sop) = uids(*i);
        let found = catalogue.instance(&study, &series, &sop).await.unwrap();
        if seen.deleted.contains(i) {
            assert_eq!(
                found, None,
                "round {round}: acknowledged delete of {i} undone"
            );
            continue;
        }
        let Some(found) = found else {
            assert!(
                seen.may_be_deleted(*i),
                "round {round}: acknowledged store {i} lost"
            );
            continue;
        };
        assert_eq!(&found.blob_key, key, "round {round}: instance {i}");
        assert_eq!(found.attributes[0].1, [format!("N{i}")]);
        let entry = feed_page(catalogue, sequence - 1, 1).await;
        assert_eq!(entry[0].sequence, *sequence);
        assert_eq!(
            entry[0].sop_instance_uid, sop,
            "round {round}: entry {sequence}"
        );
        assert_eq!(entry[0].action, ChangeAction::Create);
    }
    // The feed: gap-free up to the last sequence, each entry with the metadata of its own version.
    let last = catalogue.last_sequence();
    let mut next = 1;
    loop {
        let page = feed_page(catalogue, next - 1, 500).await;
        if page.is_empty() {
            break;
        }
        for entry in page {
            assert_eq!(entry.sequence, next, "round {round}: the feed has a gap");
            let i: u64 = entry
                .sop_instance_uid
                .rsplit('.')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let metadata = String::from_utf8(entry.metadata.unwrap()).unwrap();
            assert!(
                metadata.contains(&format!("\"N{i}\"")),
                "round {round}: entry {next} shows another version's metadata"
            );
            next += 1;
        }
    }
    assert_eq!(
        next - 1,
        last,
        "round {round}: last_sequence and the feed disagree"
    );
    // Copies: kept exactly for what was stored and neither released nor deleted.
    let mut copies = BTreeMap::new();
    let mut after = None;
    loop {
        let page = catalogue
            .unpublished_copies(after.clone(), 200)
            .await
            .unwrap();
        let Some((last_key, _)) = page.last() else {
            break;
        };
        after = Some(last_key.clone());
        copies.extend(page);
    }
    for (i, (_, key)) in &seen.stored {
        let held = copies.get(key);
        if seen.released.contains(i) || seen.deleted.contains(i) {
            assert!(held.is_none(), "round {round}: copy of {i} is back");
        } else if let Some(held) = held {
            assert!(held == &copy_of(*i), "round {round}: copy of {i} differs");
        } else {
            assert!(
                seen.may_be_released(*i) || seen.may_be_deleted(*i),
                "round {round}: copy of {i} lost"
            );
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_at_any_moment() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut seen = Acknowledged::default();
    // Kills after few and many acknowledgements (many: after several checkpoints and log rewinds), and
    // right after opening (during or just after a replay).
    let acks = [150, 0, 40, 700, 1, 300, 0, 90, 1200, 5, 450, 0, 60];
    for (round, &count) in acks.iter().enumerate() {
        run_child_and_kill(dir.path(), round as u64 * 100_000, count, &mut seen);
        if acks.get(round + 1) == Some(&0) {
            // Leave the log as the kill left it: the next child replays it, and is killed at once.
            continue;
        }
        runtime.block_on(async {
            let catalogue = EmbeddedCatalogue::open(dir.path()).unwrap();
            check(&catalogue, &seen, round).await;
        });
    }
    assert!(
        seen.stored.len() > 1000,
        "the children acknowledged {} stores",
        seen.stored.len()
    );
    assert!(!seen.deleted.is_empty() && !seen.released.is_empty());
}
