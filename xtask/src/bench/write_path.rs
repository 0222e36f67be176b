//! The write-path figures of `cargo xtask bench`: server CPU per stored instance, what the disk's fsyncs bound
//! a single client to, searches while 8 clients store, small and series retrieves, and a long ingest.

use super::{
    CONCURRENCY, DICOM_JSON, MULTIPART_DICOM, Query, SMALL, Target, clip, get_body, ms, only_part,
    percentile, post_and_check, related_body, search, uid,
};
use crate::bench_stow_large::boundary_of;
use crate::synthetic::{Description, SyntheticInstance, Uids};
use anyhow::{Context, Result, ensure};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// CPU time (user + system) a process has used so far, in ms, from `/proc/<pid>/stat`.
pub(super) fn cpu_ms(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    let after = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("{path}: no command name"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12th and 13th after the name.
    let ticks = |k: usize| -> Result<f64> {
        fields
            .get(k)
            .and_then(|f| f.parse::<f64>().ok())
            .with_context(|| format!("{path}: field {} unreadable", k + 3))
    };
    Ok((ticks(11)? + ticks(12)?) * 1000.0 / clock_ticks_per_second())
}

/// Time the hypervisor gave this machine's virtual CPUs to others so far (steal, summed over every CPU), in ms,
/// from `/proc/stat`; 0 where the kernel does not count it. A phase with much of it has its CPU figures inflated:
/// a thread descheduled by the host is still charged the time.
pub(super) fn steal_ms() -> Result<f64> {
    let text = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let cpu = text
        .lines()
        .find(|line| line.starts_with("cpu "))
        .context("/proc/stat: no cpu line")?;
    // "cpu user nice system idle iowait irq softirq steal ...": steal is the 8th number.
    let steal = cpu
        .split_whitespace()
        .nth(8)
        .and_then(|f| f.parse::<f64>().ok())
        .unwrap_or(0.0);
    Ok(steal * 1000.0 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Lets a server finish the work a phase left behind (dicomweb commits its search index 250 ms after the last
/// store, and flushes the files of small stores within 100 ms), so that CPU time read afterwards covers it.
pub(super) fn settle(agent: &ureq::Agent, target: &Target) {
    let url = format!("{}/studies?PatientID=BENCH-SETTLE", target.base);
    let _ = agent.get(&url).header("Accept", DICOM_JSON).call();
    std::thread::sleep(Duration::from_millis(1000));
}

/// The cost of the durable writes on this disk, medians in ms.
pub(super) struct DurableWriteCosts {
    /// Create a 10 KiB file, write it, `fdatasync` it.
    pub new_file_ms: f64,
    /// Rename a file, then `fsync` its directory.
    pub rename_dir_fsync_ms: f64,
    /// Create a 10 KiB file, write it, rename it, then `syncfs` the file system.
    pub new_file_syncfs_ms: f64,
    /// Append 10 KiB to an open file, then `fdatasync` it.
    pub log_append_ms: f64,
}

impl DurableWriteCosts {
    /// What one acknowledged small store from a single client waits for in dicomweb's write path: the
    /// catalogue commit, which carries a copy of the file's bytes (one `fdatasync` of its database file,
    /// shared by concurrent stores); the file itself is flushed later, for many stores at once.
    pub fn per_store_ms(&self) -> f64 {
        self.log_append_ms
    }

    /// The same when the file is flushed before the commit (one `syncfs`, then the commit): dicomweb's path
    /// for instances over 256 KiB, and for all of them before the catalogue kept copies.
    pub fn per_store_with_syncfs_ms(&self) -> f64 {
        self.new_file_syncfs_ms + self.log_append_ms
    }

    /// The same with a flush per file instead: the file, its directory, the catalogue.
    pub fn per_store_with_fsyncs_ms(&self) -> f64 {
        self.new_file_ms + self.rename_dir_fsync_ms + self.log_append_ms
    }
}

/// Measures [`DurableWriteCosts`] in `dir` (on the disk under test), `repeats` times each.
pub(super) fn durable_write_costs(dir: &Path, repeats: usize) -> Result<DurableWriteCosts> {
    let probe = dir.join("fsync-probe");
    fs::create_dir_all(&probe).with_context(|| format!("creating {}", probe.display()))?;
    let block = vec![0x5au8; 10 * 1024];
    let mut new_file = Vec::with_capacity(repeats);
    let mut rename = Vec::with_capacity(repeats);
    let mut append = Vec::with_capacity(repeats);
    let mut synced = Vec::with_capacity(repeats);
    let directory = File::open(&probe).with_context(|| format!("opening {}", probe.display()))?;
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(probe.join("log"))
        .context("creating the probe log")?;
    for k in 0..repeats {
        let path = probe.join(format!("f{k}"));
        let started = Instant::now();
        let mut file =
            File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        file.write_all(&block)?;
        file.sync_data()?;
        new_file.push(ms(started.elapsed()));

        let started = Instant::now();
        fs::rename(&path, probe.join(format!("g{k}")))?;
        directory.sync_all()?;
        rename.push(ms(started.elapsed()));

        let started = Instant::now();
        log.write_all(&block)?;
        log.sync_data()?;
        append.push(ms(started.elapsed()));

        let started = Instant::now();
        let path = probe.join(format!("h{k}#1"));
        let mut file =
            File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        file.write_all(&block)?;
        drop(file);
        fs::rename(&path, probe.join(format!("h{k}")))?;
        rustix::fs::syncfs(&directory).context("syncfs")?;
        synced.push(ms(started.elapsed()));
    }
    fs::remove_dir_all(&probe).with_context(|| format!("removing {}", probe.display()))?;
    Ok(DurableWriteCosts {
        new_file_ms: percentile(&new_file, 0.5),
        rename_dir_fsync_ms: percentile(&rename, 0.5),
        new_file_syncfs_ms: percentile(&synced, 0.5),
        log_append_ms: percentile(&append, 0.5),
    })
}

/// Small instances that no search of the query mix matches (their own patient, date and modality), to load a
/// server while it is searched.
pub(super) struct Filler {
    pub run: u64,
    /// UID kinds of study, series and instance (distinct from the data set's).
    pub kinds: [u8; 3],
    pub patients: usize,
}

impl Filler {
    /// Instance `i`: 10 per series, 5 series per study.
    pub fn instance(&self, i: usize) -> (String, Vec<u8>) {
        let uids = Uids {
            study: uid(self.run, self.kinds[0], i / 50),
            series: uid(self.run, self.kinds[1], i / 10),
            sop: uid(self.run, self.kinds[2], i),
        };
        let patient = (i / 50) % self.patients.max(1);
        let description = Description {
            patient_name: format!("FILLER^P{patient}"),
            patient_id: format!("FILLER-{patient}"),
            study_date: Some("19000101".into()),
            modality: "OT".into(),
            instance_number: u32::try_from(i % 10 + 1).unwrap_or(1),
        };
        let bytes = SyntheticInstance::described(SMALL, &uids, &description).into_bytes();
        (uids.sop, bytes)
    }

    /// Stores instance `i`, one per request.
    fn store(&self, agent: &ureq::Agent, base: &str, i: usize) -> Result<()> {
        let (sop, bytes) = self.instance(i);
        let (body, content_type) = related_body(&[&bytes]);
        post_and_check(agent, base, &body, &content_type, &[sop])
    }
}

/// What [`searches_under_store_load`] saw.
pub(super) struct UnderLoad {
    /// Latencies of the searches, ms.
    pub latencies: Vec<f64>,
    /// Instances stored per second while they ran.
    pub store_rate: f64,
}

/// Runs `queries` one after the other (after a warm-up of five) while [`CONCURRENCY`] clients store filler
/// instances `first..first + cap`, one per request; the storing stops when the searches are done.
pub(super) fn searches_under_store_load(
    agent: &ureq::Agent,
    target: &Target,
    queries: &[Query],
    filler: &Filler,
    first: usize,
    cap: usize,
) -> Result<(UnderLoad, usize)> {
    for query in queries.iter().take(5) {
        search(agent, &target.base, query)?;
    }
    let next = AtomicUsize::new(first);
    let stored = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let (latencies, store_results, secs) = std::thread::scope(|scope| {
        let storers: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    while !done.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= first + cap {
                            break;
                        }
                        filler.store(agent, &target.base, i)?;
                        stored.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        // Let the storers reach their pace before the first timed search.
        std::thread::sleep(Duration::from_millis(300));
        let latencies: Result<Vec<f64>> = queries
            .iter()
            .map(|q| search(agent, &target.base, q))
            .collect();
        let secs = started.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        let results: Vec<Result<()>> = storers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a storing client panicked")))
            })
            .collect();
        (latencies, results, secs)
    });
    for result in store_results {
        result?;
    }
    let latencies = latencies?;
    let stored = stored.into_inner();
    let responses = latencies.len() + 5 + stored;
    Ok((
        UnderLoad {
            latencies,
            store_rate: stored as f64 / secs,
        },
        responses,
    ))
}

/// Retrieves one instance `repeats` times (after a warm-up) with `accept`, checking that the body (or its one
/// part) is the stored file byte for byte; the median in ms.
pub(super) fn small_retrieve(
    agent: &ureq::Agent,
    target: &Target,
    uids: &Uids,
    stored: &[u8],
    accept: &str,
    repeats: usize,
) -> Result<(f64, usize)> {
    let url = format!(
        "{}/studies/{}/series/{}/instances/{}",
        target.base, uids.study, uids.series, uids.sop
    );
    let multipart = accept.starts_with("multipart/");
    let mut times = Vec::with_capacity(repeats + 1);
    for _ in 0..repeats + 1 {
        let started = Instant::now();
        let (status, content_type, body) = get_body(agent, &url, accept, 16 << 20)?;
        times.push(ms(started.elapsed()));
        ensure!(
            status == 200,
            "GET {url} ({accept}) answered {status}: {}",
            clip(&String::from_utf8_lossy(&body))
        );
        let content = if multipart {
            let boundary = boundary_of(&content_type)
                .with_context(|| format!("GET {url}: no boundary in {content_type}"))?;
            only_part(&body, &boundary)
                .with_context(|| format!("GET {url}: malformed multipart body"))?
        } else {
            body.as_slice()
        };
        ensure!(
            content == stored,
            "GET {url} ({accept}): {} bytes that differ from the {} stored",
            content.len(),
            stored.len()
        );
    }
    Ok((percentile(&times[1..], 0.5), repeats + 1))
}

/// Retrieves a whole series as `multipart/related; type="application/dicom"` `repeats` times (after a
/// warm-up), checking the number of parts and that every part is one of the stored files; the median in ms.
pub(super) fn series_retrieve(
    agent: &ureq::Agent,
    target: &Target,
    series: &[(Uids, Vec<u8>)],
    repeats: usize,
) -> Result<(f64, usize)> {
    let uids = &series[0].0;
    let url = format!(
        "{}/studies/{}/series/{}",
        target.base, uids.study, uids.series
    );
    let stored_bytes: usize = series.iter().map(|(_, b)| b.len()).sum();
    let mut times = Vec::with_capacity(repeats + 1);
    for _ in 0..repeats + 1 {
        let started = Instant::now();
        let (status, content_type, body) = get_body(agent, &url, MULTIPART_DICOM, 1 << 30)?;
        times.push(ms(started.elapsed()));
        ensure!(
            status == 200,
            "GET {url} answered {status}: {}",
            clip(&String::from_utf8_lossy(&body))
        );
        let boundary = boundary_of(&content_type)
            .with_context(|| format!("GET {url}: no boundary in {content_type}"))?;
        let parts = split_parts(&body, &boundary);
        ensure!(
            parts.len() == series.len(),
            "GET {url}: {} parts for the {} instances of the series",
            parts.len(),
            series.len()
        );
        let returned: usize = parts.iter().map(|p| p.len()).sum();
        ensure!(
            returned == stored_bytes,
            "GET {url}: {returned} bytes of instances, {stored_bytes} stored"
        );
        for (uids, _) in series.iter().step_by(97) {
            ensure!(
                parts
                    .iter()
                    .any(|p| p.windows(uids.sop.len()).any(|w| w == uids.sop.as_bytes())),
                "GET {url}: instance {} missing",
                uids.sop
            );
        }
    }
    Ok((percentile(&times[1..], 0.5), repeats + 1))
}

/// The contents of the parts of a multipart body.
fn split_parts<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut starts = Vec::new();
    let mut k = 0;
    while k + delimiter.len() <= body.len() {
        if &body[k..k + delimiter.len()] == delimiter && (k == 0 || body[..k].ends_with(b"\r\n")) {
            starts.push(k);
            k += delimiter.len();
        } else {
            k += 1;
        }
    }
    starts
        .windows(2)
        .filter_map(|w| {
            let part = &body[w[0] + delimiter.len()..w[1] - 2];
            let head_end = part.windows(4).position(|x| x == b"\r\n\r\n")? + 4;
            Some(&part[head_end..])
        })
        .collect()
}

/// What [`ingest`] measured.
pub(super) struct Ingest {
    pub instances: usize,
    pub block: usize,
    /// Instances per second over each block of `block` instances, in order of completion.
    pub block_rates: Vec<f64>,
    pub overall_rate: f64,
    pub cpu_ms_per_instance: f64,
    /// How much the files, the search index and the catalogue grew over the ingest.
    pub dicom_bytes: u64,
    pub index_bytes: u64,
    pub catalogue_bytes: u64,
}

impl Ingest {
    pub fn first_block_rate(&self) -> f64 {
        self.block_rates.first().copied().unwrap_or(f64::NAN)
    }
    pub fn last_block_rate(&self) -> f64 {
        self.block_rates.last().copied().unwrap_or(f64::NAN)
    }
}

/// Stores `count` filler instances, one per request from [`CONCURRENCY`] clients, and measures how much the
/// parts of the data directory (`data_dir`: `blobs/`, `index/`, `catalogue/`) grew.
pub(super) fn ingest(
    agent: &ureq::Agent,
    target: &Target,
    data_dir: &Path,
    filler: &Filler,
    count: usize,
    block: usize,
) -> Result<(Ingest, usize)> {
    let next = AtomicUsize::new(0);
    let completions = Mutex::new(Vec::with_capacity(count));
    settle(agent, target);
    let sizes_before = DataSizes::of(data_dir)?;
    let cpu_before = cpu_ms(target.pid)?;
    let started = Instant::now();
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return Ok(());
                        }
                        filler.store(agent, &target.base, i)?;
                        completions
                            .lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?
                            .push(started.elapsed().as_secs_f64());
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("an ingesting client panicked")))
            })
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    for result in results {
        result?;
    }
    settle(agent, target);
    let cpu = cpu_ms(target.pid)? - cpu_before;
    let mut times = completions
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    times.sort_by(f64::total_cmp);
    let block = block.clamp(1, count.max(1));
    let block_rates = (0..count / block)
        .map(|b| {
            let from = if b == 0 { 0.0 } else { times[b * block - 1] };
            let to = times[(b + 1) * block - 1];
            block as f64 / (to - from)
        })
        .collect();
    let sizes_after = DataSizes::of(data_dir)?;
    let grown = |f: fn(&DataSizes) -> u64| f(&sizes_after).saturating_sub(f(&sizes_before));
    let outcome = Ingest {
        instances: count,
        block,
        block_rates,
        overall_rate: count as f64 / secs,
        cpu_ms_per_instance: cpu / count as f64,
        dicom_bytes: grown(|d| d.blobs),
        index_bytes: grown(|d| d.index),
        catalogue_bytes: grown(|d| d.catalogue),
    };
    Ok((outcome, count))
}

/// The bytes of dicomweb's data directory, by part.
struct DataSizes {
    blobs: u64,
    index: u64,
    catalogue: u64,
}

impl DataSizes {
    fn of(data_dir: &Path) -> Result<DataSizes> {
        Ok(DataSizes {
            blobs: directory_bytes(&data_dir.join("blobs"))?,
            index: directory_bytes(&data_dir.join("index"))?,
            catalogue: directory_bytes(&data_dir.join("catalogue"))?,
        })
    }
}

/// The bytes of the files under `dir` (0 when it does not exist).
fn directory_bytes(dir: &Path) -> Result<u64> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += directory_bytes(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_multipart_body() {
        let (body, content_type) = related_body(&[b"one\r\n--x".as_slice(), b"two"]);
        let boundary = boundary_of(&content_type).unwrap();
        assert_eq!(
            split_parts(&body, &boundary),
            vec![b"one\r\n--x".as_slice(), b"two".as_slice()]
        );
    }

    #[test]
    fn cpu_time_of_this_process_grows() {
        let pid = std::process::id();
        let before = cpu_ms(pid).unwrap();
        let mut x = 0u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(cpu_ms(pid).unwrap() > before);
    }

    #[test]
    fn filler_instances_are_outside_the_query_mix() {
        let filler = Filler {
            run: 1,
            kinds: [10, 11, 12],
            patients: 3,
        };
        let (sop, bytes) = filler.instance(7);
        assert!(sop.starts_with("2.25.112"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("FILLER^P0") && !text.contains("SMITH"));
    }
}
