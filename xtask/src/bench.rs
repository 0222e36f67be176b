//! `cargo xtask bench`: the same client workload against this server and against Orthanc, side by side.
//!
//! Orthanc with its DICOMweb plugin is what many people run today; Debian packages both. Each server gets a
//! temporary directory on the same disk (our data directory; Orthanc's storage and SQLite index) and the same
//! synthetic data set, generated here; every phase runs against both servers in one run, alternating which goes
//! first, and every response is checked (a fast wrong answer fails the command). Orthanc cannot bind to loopback
//! only: it listens on every interface and refuses other hosts (`RemoteAccessAllowed: false`).

pub mod images;
mod write_path;

use crate::bench_stow_large::{boundary_of, first_part};
use crate::machine::{self, Machine};
use crate::prerequisites;
use crate::report;
use crate::rss;
use crate::server::{self, Server};
use crate::synthetic::{Description, Layout, MIB, SyntheticInstance, Uids};
use anyhow::{Context, Result, bail, ensure};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use ureq::SendBody;

const SECTION: &str = "Side by side with Orthanc";
const DICOM_JSON: &str = "application/dicom+json";
const INSTANCES_PER_STUDY: usize = 10;
const SERIES_PER_STUDY: usize = 2;
/// Pixel data of the small instances: 64 x 80 16-bit pixels, 10 KiB.
const SMALL: Layout = Layout {
    rows: 64,
    columns: 80,
    frames: 1,
};
/// The multi-frame instance: 500 frames of 256 x 256 16-bit pixels (128 KiB each).
const MULTI_FRAME: Layout = Layout {
    rows: 256,
    columns: 256,
    frames: 500,
};
const FRAMES_ASKED: [u32; 3] = [1, 250, 500];
const METADATA_SERIES_INSTANCES: usize = 600;
const BATCH: usize = 50;
const CONCURRENCY: usize = 8;
const FAMILY_NAMES: [&str; 20] = [
    "SMITH", "JONES", "MULLER", "GARCIA", "ROSSI", "MARTIN", "BERNARD", "DUBOIS", "NOVAK", "SILVA",
    "KOWALSKI", "NIELSEN", "JANSEN", "PETERS", "OLSEN", "LAMBERT", "MOREAU", "FISCHER", "WEBER",
    "SCHULZ",
];
const GIVEN_NAMES: [&str; 8] = [
    "ANNA", "JOHN", "MARIE", "PAUL", "EVA", "LUCAS", "SOFIA", "NOAH",
];
const MODALITIES: [&str; 6] = ["CT", "MR", "CR", "US", "DX", "MG"];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A smaller run (under 5 minutes): fewer instances, queries and repetitions.
    #[arg(long)]
    quick: bool,
    /// Do not write the results to docs/benchmarks.md.
    #[arg(long)]
    no_report: bool,
    /// Keep both servers' temporary directories and logs.
    #[arg(long)]
    keep: bool,
    /// Only the STOW phases and their CPU figures (with the durable-write bound), never written to
    /// docs/benchmarks.md: for work on the write path.
    #[arg(long)]
    stow_only: bool,
}

/// How much of each phase a run does.
struct Sizes {
    stow_sequential: usize,
    stow_concurrent: usize,
    stow_batches: usize,
    qido_latency: usize,
    qido_throughput: usize,
    metadata_repeats: usize,
    large_mib: u64,
    large_repeats: usize,
    frame_repeats: usize,
    /// Retrieves of one small instance, and of the 600-instance series.
    small_retrieve_repeats: usize,
    series_retrieve_repeats: usize,
    /// Searches timed while 8 clients store, and the most instances they store meanwhile.
    qido_under_load: usize,
    store_load_cap: usize,
    /// The long ingest (dicomweb only) and the block its rates are measured over.
    ingest_instances: usize,
    ingest_block: usize,
    stow_only: bool,
}

impl Sizes {
    fn of(args: &Args) -> Sizes {
        if args.quick {
            Sizes {
                stow_sequential: 200,
                stow_concurrent: 400,
                stow_batches: 8,
                qido_latency: 200,
                qido_throughput: 400,
                metadata_repeats: 5,
                large_mib: 120,
                large_repeats: 3,
                frame_repeats: 10,
                small_retrieve_repeats: 50,
                series_retrieve_repeats: 3,
                qido_under_load: 200,
                store_load_cap: 20_000,
                ingest_instances: 10_000,
                ingest_block: 2_000,
                stow_only: args.stow_only,
            }
        } else {
            Sizes {
                stow_sequential: 1000,
                stow_concurrent: 2000,
                stow_batches: 40,
                qido_latency: 1000,
                qido_throughput: 4000,
                metadata_repeats: 20,
                large_mib: 240,
                large_repeats: 5,
                frame_repeats: 40,
                small_retrieve_repeats: 200,
                series_retrieve_repeats: 10,
                qido_under_load: 1000,
                store_load_cap: 100_000,
                ingest_instances: 100_000,
                ingest_block: 10_000,
                stow_only: args.stow_only,
            }
        }
    }
}

pub fn run(args: &Args) -> Result<()> {
    let sizes = Sizes::of(args);
    let root = server::workspace_root();
    let target_dir = server::target_dir(&root)?;
    let orthanc_binary =
        prerequisites::ensure_debian_program("Orthanc", &["orthanc", "orthanc-dicomweb"])?;
    let plugin = dicomweb_plugin()?;
    eprintln!(
        "xtask: cargo build --release --bin dicomweb (target directory {})",
        target_dir.display()
    );
    let binary = server::build_release(&root, &target_dir)?;
    let work = tempfile::Builder::new()
        .prefix("dicomweb-bench-")
        .tempdir()
        .context("creating a temporary directory for both servers")?;
    let agent = ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build(),
    );

    let outcome = with_both_servers(
        &binary,
        &orthanc_binary,
        &plugin,
        work.path(),
        &agent,
        |targets| measure(&sizes, targets, &agent),
    );
    if args.keep {
        let kept = work.keep();
        eprintln!(
            "xtask: kept both servers' data and logs in {}",
            kept.display()
        );
    }
    let outcome = outcome?;
    let machine = Machine::describe();
    let peer_version = orthanc_version(&orthanc_binary);
    let table = table(&outcome);
    println!("\n{table}\n{}", outcome.write_path);
    if !args.no_report && !args.stow_only {
        let path = root.join("docs").join("benchmarks.md");
        let body = markdown(args, &sizes, &outcome, &table, &machine, &peer_version);
        report::update_section(&path, SECTION, &body)?;
        eprintln!("xtask: wrote \"{SECTION}\" in {}", path.display());
    }
    Ok(())
}

/// Starts dicomweb (the release `binary`, data under `work`) and Orthanc (its own directory under `work`), runs
/// `measure` against both, then stops both; a failure carries the end of both servers' logs.
fn with_both_servers<T>(
    binary: &Path,
    orthanc_binary: &Path,
    plugin: &Path,
    work: &Path,
    agent: &ureq::Agent,
    measure: impl FnOnce(&[Target; 2]) -> Result<T>,
) -> Result<T> {
    let ours_dir = work.join("dicomweb");
    let mut ours = Server::start(
        binary,
        &ours_dir.join("data"),
        &work.join("dicomweb.log"),
        agent,
    )?;
    let mut peer = Orthanc::start(orthanc_binary, plugin, &work.join("orthanc"), agent)?;
    let targets = [
        Target {
            name: "dicomweb",
            base: ours.base_url().to_string(),
            pid: ours.pid(),
            data_dir: ours_dir.join("data"),
        },
        Target {
            name: "Orthanc",
            base: peer.dicomweb_root(),
            pid: peer.pid,
            data_dir: work.join("orthanc"),
        },
    ];
    let measured = measure(&targets).with_context(|| {
        format!(
            "benchmark failed; dicomweb's log ends with:\n{}\nOrthanc's log ends with:\n{}\n",
            ours.log_tail(),
            peer.log_tail()
        )
    });
    ours.stop()?;
    peer.stop();
    measured
}

/// One server under test.
struct Target {
    name: &'static str,
    /// The DICOMweb root (`/studies` and so on are below it).
    base: String,
    pid: u32,
    /// Where the server keeps its files.
    data_dir: PathBuf,
}

/// One measured figure of both servers, in the order of `targets`.
struct Figure {
    name: String,
    unit: &'static str,
    /// Whether a larger number is better (throughputs) or a smaller one (latencies, memory).
    higher_is_better: bool,
    values: [f64; 2],
}

struct Outcome {
    figures: Vec<Figure>,
    /// Markdown paragraphs on the write path (the durable-write bound, searches under load, the long
    /// ingest), written after the table.
    write_path: String,
    checked_responses: usize,
    qido_studies: usize,
}

// ---------------------------------------------------------------------------------------------------------------
// The workload

/// The generated data set and the generator's model of it (what every search must find).
struct DataSet {
    run: u64,
    studies: Vec<StudyModel>,
}

#[derive(Clone)]
struct StudyModel {
    uid: String,
    patient_name: String,
    patient_id: String,
    date: String,
    modality: String,
}

impl DataSet {
    fn new(studies: usize) -> Result<DataSet> {
        let mut rng = StdRng::seed_from_u64(6);
        let run = rand::rng().random_range(1_000_000_000..4_000_000_000u64);
        let first_day = time::Date::from_calendar_date(2015, time::Month::January, 1)?;
        let studies = (0..studies)
            .map(|s| {
                let patient = s % 150;
                let day = first_day + time::Duration::days(rng.random_range(0..3650));
                StudyModel {
                    uid: uid(run, 1, s),
                    patient_name: format!(
                        "{}^{}",
                        FAMILY_NAMES[patient % FAMILY_NAMES.len()],
                        GIVEN_NAMES[(patient / FAMILY_NAMES.len()) % GIVEN_NAMES.len()]
                    ),
                    patient_id: format!("PID{patient:05}"),
                    date: format!(
                        "{:04}{:02}{:02}",
                        day.year(),
                        u8::from(day.month()),
                        day.day()
                    ),
                    modality: MODALITIES[rng.random_range(0..MODALITIES.len())].to_string(),
                }
            })
            .collect();
        Ok(DataSet { run, studies })
    }

    /// Small instance number `i` (10 per study, 2 series per study), as a Part 10 file.
    fn small_instance(&self, i: usize) -> Vec<u8> {
        let study_index = i / INSTANCES_PER_STUDY;
        let study = &self.studies[study_index];
        let series = study_index * SERIES_PER_STUDY + (i % INSTANCES_PER_STUDY) % SERIES_PER_STUDY;
        let uids = Uids {
            study: study.uid.clone(),
            series: uid(self.run, 2, series),
            sop: uid(self.run, 3, i),
        };
        let description = Description {
            patient_name: study.patient_name.clone(),
            patient_id: study.patient_id.clone(),
            study_date: Some(study.date.clone()),
            modality: study.modality.clone(),
            instance_number: u32::try_from(i % INSTANCES_PER_STUDY + 1).unwrap_or(1),
        };
        SyntheticInstance::described(SMALL, &uids, &description).into_bytes()
    }

    /// Instance `i` of the 600-instance series.
    fn series_instance(&self, i: usize) -> (Uids, Vec<u8>) {
        let uids = Uids {
            study: uid(self.run, 4, 0),
            series: uid(self.run, 5, 0),
            sop: uid(self.run, 6, i),
        };
        let description = Description {
            patient_name: "SERIES^METADATA".into(),
            patient_id: "BENCH-SERIES".into(),
            study_date: Some("20240101".into()),
            modality: "CT".into(),
            instance_number: u32::try_from(i + 1).unwrap_or(1),
        };
        let bytes = SyntheticInstance::described(SMALL, &uids, &description).into_bytes();
        (uids, bytes)
    }

    fn large_uids(&self, which: usize) -> Uids {
        Uids {
            study: uid(self.run, 7, which),
            series: uid(self.run, 8, which),
            sop: uid(self.run, 9, which),
        }
    }
}

/// A 2.25 UID unique to this run, `kind` and `n`.
fn uid(run: u64, kind: u8, n: usize) -> String {
    format!("2.25.{run}{kind}{n:09}")
}

fn measure(sizes: &Sizes, targets: &[Target; 2], agent: &ureq::Agent) -> Result<Outcome> {
    let stored = sizes.stow_sequential + sizes.stow_concurrent + sizes.stow_batches * BATCH;
    let data = DataSet::new(stored.div_ceil(INSTANCES_PER_STUDY))?;
    let mut checked = 0usize;
    // Responses checked outside `both`, which borrows `checked`.
    let mut extra_checked = 0usize;
    let mut figures = Vec::new();
    // Alternate which server goes first, phase by phase.
    let mut phase = 0usize;
    let mut both =
        |name: &str, f: &mut dyn FnMut(&Target) -> Result<(f64, usize)>| -> Result<[f64; 2]> {
            let order: [usize; 2] = if phase.is_multiple_of(2) {
                [0, 1]
            } else {
                [1, 0]
            };
            phase += 1;
            let mut values = [0.0; 2];
            for index in order {
                let target = &targets[index];
                eprintln!("xtask: {name}: {}", target.name);
                let (value, responses) =
                    f(target).with_context(|| format!("{name} on {}", target.name))?;
                values[index] = value;
                checked += responses;
            }
            Ok(values)
        };

    // STOW of 10 KiB instances: one per request at concurrency 1 and 8, then 50 per request; the server's CPU
    // time per stored instance of each, including the work the phase leaves behind (see write_path::settle).
    let stow_phases = [
        (
            "1 instance per request, 1 client",
            "one per request, 1 client",
            1,
            1,
            sizes.stow_sequential,
        ),
        (
            "1 instance per request, 8 clients",
            "one per request, 8 clients",
            1,
            CONCURRENCY,
            sizes.stow_concurrent,
        ),
        (
            "50 instances per request, 1 client",
            "50 per request, 1 client",
            BATCH,
            1,
            sizes.stow_batches * BATCH,
        ),
    ];
    let mut next_instance = 0;
    let mut stow_rates = Vec::new();
    // Per phase, the steal time during each server's run, as a share of that run's wall time.
    let mut steal_shares = Vec::new();
    for (phase_name, figure_name, per_request, clients, count) in stow_phases {
        let range = next_instance..next_instance + count;
        next_instance = range.end;
        let cpu = Mutex::new([0.0; 2]);
        let steal = Mutex::new([0.0; 2]);
        let values = both(&format!("STOW, {phase_name}"), &mut |t| {
            let before = write_path::cpu_ms(t.pid)?;
            let (stolen_before, started) = (write_path::steal_ms()?, std::time::Instant::now());
            let (rate, responses) = stow(agent, t, &data, range.clone(), per_request, clients)?;
            write_path::settle(agent, t);
            let used = write_path::cpu_ms(t.pid)? - before;
            let stolen = write_path::steal_ms()? - stolen_before;
            let server = usize::from(t.name != "dicomweb");
            cpu.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[server] = used / count as f64;
            steal.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[server] =
                stolen / (started.elapsed().as_secs_f64() * 1000.0);
            Ok((rate, responses))
        })?;
        steal_shares.push((
            figure_name,
            steal
                .into_inner()
                .map_err(|_| anyhow::anyhow!("poisoned"))?,
        ));
        stow_rates.push(values);
        figures.push(Figure::throughput(
            &format!("STOW-RS, 10 KiB instances, {figure_name}"),
            "instances/s",
            values,
        ));
        figures.push(Figure::latency(
            &format!("server CPU per stored instance, {figure_name}"),
            "ms",
            cpu.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?,
        ));
    }

    // What a single client's stores are bound by: the fsyncs one acknowledged store waits for.
    let costs = write_path::durable_write_costs(&targets[0].data_dir, 200)?;
    let bound_ms = costs.per_store_ms();
    let one_client_ms = 1000.0 / stow_rates[0][0];
    let mut write_path_notes = String::new();
    let _ = writeln!(
        write_path_notes,
        "Durable-write bound (measured in dicomweb's data directory, medians of 200): creating, writing and \
         `fdatasync`ing a 10 KiB file {:.3} ms; a rename and `fsync` of its directory {:.3} ms; creating, \
         writing and renaming a 10 KiB file, then one `syncfs` {:.3} ms; appending 10 KiB to an open file and \
         `fdatasync` {:.3} ms. A small store in dicomweb waits for one flush, the catalogue's commit carrying a \
         copy of its file (one `fdatasync`, shared by concurrent stores; the file is flushed later with \
         others): {bound_ms:.3} ms from a single client ({:.3} ms with a `syncfs` of the file before the \
         commit, {:.3} ms with a flush of the file, of its directory and of the catalogue), so one \
         client storing one instance per request can reach at most {:.0} instances/s on this disk, {:.2}x \
         Orthanc's {:.0}/s in this run (Orthanc does not flush its files). dicomweb took {one_client_ms:.2} ms \
         per request from one client, of which the flushes are {:.0}%.\n",
        costs.new_file_ms,
        costs.rename_dir_fsync_ms,
        costs.new_file_syncfs_ms,
        costs.log_append_ms,
        costs.per_store_with_syncfs_ms(),
        costs.per_store_with_fsyncs_ms(),
        1000.0 / bound_ms,
        1000.0 / bound_ms / stow_rates[0][1],
        stow_rates[0][1],
        100.0 * bound_ms / one_client_ms,
    );
    let _ = writeln!(
        write_path_notes,
        "CPU time the hypervisor gave to other guests during the STOW phases (steal, from `/proc/stat`, summed \
         over both cores, per second of each run, so at most 200%; a thread the host descheduled is still \
         charged that time, so a phase with much steal has its CPU figures inflated): {}.\n",
        steal_shares
            .iter()
            .map(|(phase, [ours, theirs])| format!(
                "{phase}: {:.1}% for dicomweb, {:.1}% for Orthanc",
                100.0 * ours,
                100.0 * theirs
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );

    if sizes.stow_only {
        return Ok(Outcome {
            figures,
            checked_responses: checked,
            qido_studies: data.studies.len(),
            write_path: write_path_notes,
        });
    }

    // QIDO-RS over the studies just stored.
    let queries = query_mix(&data, sizes.qido_latency.max(sizes.qido_throughput));
    let latencies = Mutex::new([Vec::new(), Vec::new()]);
    both("QIDO latency", &mut |t| {
        let index = usize::from(t.name != "dicomweb");
        let times = qido_sequential(agent, t, &queries[..sizes.qido_latency])?;
        let n = times.len();
        latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[index] = times;
        Ok((0.0, n))
    })?;
    let latencies = latencies
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let p = |q: f64| [percentile(&latencies[0], q), percentile(&latencies[1], q)];
    figures.push(Figure::latency(
        "QIDO-RS study search, query mix, 1 client: p50",
        "ms",
        p(0.50),
    ));
    figures.push(Figure::latency(
        "QIDO-RS study search, query mix, 1 client: p99",
        "ms",
        p(0.99),
    ));
    let values = both("QIDO throughput", &mut |t| {
        qido_concurrent(agent, t, &queries[..sizes.qido_throughput], CONCURRENCY)
    })?;
    figures.push(Figure::throughput(
        "QIDO-RS study search, query mix, 8 clients",
        "queries/s",
        values,
    ));

    // The same searches while 8 clients store instances that none of them matches.
    let idle_p99 = p(0.99);
    let filler = write_path::Filler {
        run: data.run,
        kinds: [10, 11, 12],
        patients: 100,
    };
    let under_load = Mutex::new(Vec::new());
    both("QIDO while 8 clients store", &mut |t| {
        let (seen, responses) = write_path::searches_under_store_load(
            agent,
            t,
            &queries[..sizes.qido_under_load],
            &filler,
            0,
            sizes.store_load_cap,
        )?;
        under_load
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push((t.name, seen));
        Ok((0.0, responses))
    })?;
    let mut under_load = under_load
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    under_load.sort_by_key(|(name, _)| usize::from(*name != "dicomweb"));
    let loaded_p99 = [
        percentile(&under_load[0].1.latencies, 0.99),
        percentile(&under_load[1].1.latencies, 0.99),
    ];
    figures.push(Figure::latency(
        "QIDO-RS study search, query mix, 1 client, while 8 clients store: p99",
        "ms",
        loaded_p99,
    ));
    let _ = writeln!(
        write_path_notes,
        "Searches while 8 clients store ({} sequential searches of the mix; the storing clients store \
         instances of other patients, one per request): p99 {:.2} ms for dicomweb, {:.2}x its idle p99 of \
         {:.2} ms (target: within 2x), while it stored {:.0} instances/s; Orthanc {:.2} ms, {:.2}x its idle \
         {:.2} ms, storing {:.0}/s.\n",
        sizes.qido_under_load,
        loaded_p99[0],
        loaded_p99[0] / idle_p99[0],
        idle_p99[0],
        under_load[0].1.store_rate,
        loaded_p99[1],
        loaded_p99[1] / idle_p99[1],
        idle_p99[1],
        under_load[1].1.store_rate,
    );

    // Series metadata of a 600-instance series (stored first, untimed).
    let series: Vec<(Uids, Vec<u8>)> = (0..METADATA_SERIES_INSTANCES)
        .map(|i| data.series_instance(i))
        .collect();
    let values = both("series metadata", &mut |t| {
        series_metadata(agent, t, &series, sizes.metadata_repeats)
    })?;
    figures.push(Figure::latency(
        "WADO-RS series metadata, 600 instances (median)",
        "ms",
        values,
    ));
    let values = both("series retrieve", &mut |t| {
        write_path::series_retrieve(agent, t, &series, sizes.series_retrieve_repeats)
    })?;
    figures.push(Figure::latency(
        "WADO-RS series of 600 10 KiB instances, whole, multipart (median)",
        "ms",
        values,
    ));

    // One small instance, as multipart/related (both) and as single-part application/dicom (dicomweb).
    let (small_uids, small_bytes) = &series[0];
    let values = both("small instance retrieve", &mut |t| {
        write_path::small_retrieve(
            agent,
            t,
            small_uids,
            small_bytes,
            MULTIPART_DICOM,
            sizes.small_retrieve_repeats,
        )
    })?;
    figures.push(Figure::latency(
        "WADO-RS one 10 KiB instance as multipart/related (median)",
        "ms",
        values,
    ));
    let (single_part, responses) = write_path::small_retrieve(
        agent,
        &targets[0],
        small_uids,
        small_bytes,
        "application/dicom; transfer-syntax=*",
        sizes.small_retrieve_repeats,
    )?;
    extra_checked += responses;
    let _ = writeln!(
        write_path_notes,
        "One 10 KiB instance from dicomweb: {:.3} ms as `multipart/related`, {:.3} ms as single-part \
         `application/dicom` ({:.2}x; target: within 1.5x). Orthanc's DICOMweb plugin answers multipart only.\n",
        values[0],
        single_part,
        values[0] / single_part,
    );

    // Whole-instance retrieve of a large instance.
    let large = Layout::for_size(sizes.large_mib * MIB, None)?;
    let uids = data.large_uids(0);
    let values = both("large instance retrieve", &mut |t| {
        large_retrieve(agent, t, large, &uids, sizes.large_repeats)
    })?;
    figures.push(Figure::throughput(
        &format!(
            "WADO-RS instance of {} MiB ({} frames), whole (median)",
            sizes.large_mib, large.frames
        ),
        "MiB/s",
        values,
    ));

    // Frames of a 500-frame instance.
    let uids = data.large_uids(1);
    let frame_times = Mutex::new([Vec::new(), Vec::new()]);
    both("frames", &mut |t| {
        let index = usize::from(t.name != "dicomweb");
        let times = frames(agent, t, &uids, sizes.frame_repeats)?;
        let n = times.iter().map(Vec::len).sum();
        frame_times
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?[index] = times;
        Ok((0.0, n))
    })?;
    let frame_times = frame_times
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    for (k, number) in FRAMES_ASKED.iter().enumerate() {
        figures.push(Figure::latency(
            &format!("WADO-RS frame {number} of a 500-frame instance (128 KiB frames, median)"),
            "ms",
            [
                percentile(&frame_times[0][k], 0.5),
                percentile(&frame_times[1][k], 0.5),
            ],
        ));
    }

    // Peak memory over the whole run.
    let hwm = |t: &Target| rss::read_status(t.pid).map(|s| s.hwm_kib as f64 / 1024.0);
    figures.push(Figure::latency(
        "Peak RSS of the server over the run (VmHWM)",
        "MiB",
        [hwm(&targets[0])?, hwm(&targets[1])?],
    ));

    // A long ingest into dicomweb (after the peak-memory reading, which it would dominate).
    if sizes.ingest_instances > 0 {
        eprintln!(
            "xtask: ingest of {} instances, 8 clients: dicomweb",
            sizes.ingest_instances
        );
        let filler = write_path::Filler {
            run: data.run,
            kinds: [13, 14, 15],
            patients: 1000,
        };
        let (ingest, responses) = write_path::ingest(
            agent,
            &targets[0],
            &targets[0].data_dir,
            &filler,
            sizes.ingest_instances,
            sizes.ingest_block,
        )?;
        extra_checked += responses;
        let rates: Vec<String> = ingest
            .block_rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect();
        let per_instance = |bytes: u64| bytes as f64 / ingest.instances as f64;
        let _ = writeln!(
            write_path_notes,
            "Ingest of {} more 10 KiB instances into dicomweb, which already held every instance of the phases \
             above (8 clients, one per request, {:.0} instances/s overall, {:.2} ms of server CPU per instance): \
             instances/s per block of {}: {}. The last block ran at {:.0}% of the first (target: within 20%). \
             Growth per ingested instance: {:.0} bytes of search index and {:.0} bytes of catalogue, beside \
             {:.0} bytes of DICOM file (the index is {:.1}% of the files).\n",
            ingest.instances,
            ingest.overall_rate,
            ingest.cpu_ms_per_instance,
            ingest.block,
            rates.join(", "),
            100.0 * ingest.last_block_rate() / ingest.first_block_rate(),
            per_instance(ingest.index_bytes),
            per_instance(ingest.catalogue_bytes),
            per_instance(ingest.dicom_bytes),
            100.0 * ingest.index_bytes as f64 / ingest.dicom_bytes as f64,
        );
    }
    Ok(Outcome {
        figures,
        checked_responses: checked + extra_checked,
        qido_studies: data.studies.len(),
        write_path: write_path_notes,
    })
}

impl Figure {
    fn throughput(name: &str, unit: &'static str, values: [f64; 2]) -> Figure {
        Figure {
            name: name.to_string(),
            unit,
            higher_is_better: true,
            values,
        }
    }
    fn latency(name: &str, unit: &'static str, values: [f64; 2]) -> Figure {
        Figure {
            name: name.to_string(),
            unit,
            higher_is_better: false,
            values,
        }
    }
}

fn percentile(times_ms: &[f64], q: f64) -> f64 {
    if times_ms.is_empty() {
        return f64::NAN;
    }
    let mut sorted = times_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A `multipart/related; type="application/dicom"` body of `instances`.
fn related_body(instances: &[&[u8]]) -> (Vec<u8>, String) {
    let boundary = "benchBoundary7d1f0c";
    let mut body = Vec::with_capacity(instances.iter().map(|i| i.len() + 80).sum());
    for instance in instances {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(instance);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        body,
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
    )
}

/// POSTs `body` to `{base}/studies` and checks that all `expected` SOP instances were stored.
fn post_and_check(
    agent: &ureq::Agent,
    base: &str,
    body: &[u8],
    content_type: &str,
    expected: &[String],
) -> Result<()> {
    let url = format!("{base}/studies");
    let mut response = agent
        .post(&url)
        .header("Content-Type", content_type)
        .header("Accept", DICOM_JSON)
        .send(body)
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    ensure!(
        status == 200,
        "POST {url} answered {status}: {}",
        clip(&text)
    );
    let answer: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("POST {url}: the answer is not JSON: {}", clip(&text)))?;
    ensure!(
        values(&answer, "00081198").is_empty(),
        "POST {url}: failures reported: {}",
        clip(&text)
    );
    let stored: BTreeSet<&str> = values(&answer, "00081199")
        .iter()
        .filter_map(|item| first_string(item, "00081155"))
        .collect();
    let wanted: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    ensure!(
        stored == wanted,
        "POST {url}: {} instances referenced, {} sent",
        stored.len(),
        wanted.len()
    );
    Ok(())
}

fn clip(text: &str) -> &str {
    let end = text.char_indices().nth(500).map_or(text.len(), |(i, _)| i);
    &text[..end]
}

fn values<'a>(item: &'a serde_json::Value, tag: &str) -> &'a [serde_json::Value] {
    item.get(tag)
        .and_then(|e| e.get("Value"))
        .and_then(serde_json::Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn first_string<'a>(item: &'a serde_json::Value, tag: &str) -> Option<&'a str> {
    values(item, tag)
        .first()
        .and_then(serde_json::Value::as_str)
}

/// Stores the small instances `range`, `per_request` per request, from `clients` threads; instances per second.
fn stow(
    agent: &ureq::Agent,
    target: &Target,
    data: &DataSet,
    range: std::ops::Range<usize>,
    per_request: usize,
    clients: usize,
) -> Result<(f64, usize)> {
    let requests: Vec<Vec<usize>> = range
        .collect::<Vec<_>>()
        .chunks(per_request)
        .map(<[usize]>::to_vec)
        .collect();
    // Generated before the clock starts.
    let bodies: Vec<(Vec<u8>, String, Vec<String>)> = requests
        .iter()
        .map(|indices| {
            let instances: Vec<Vec<u8>> = indices.iter().map(|&i| data.small_instance(i)).collect();
            let refs: Vec<&[u8]> = instances.iter().map(Vec::as_slice).collect();
            let (body, content_type) = related_body(&refs);
            let sops = indices.iter().map(|&i| uid(data.run, 3, i)).collect();
            (body, content_type, sops)
        })
        .collect();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some((body, content_type, sops)) = bodies.get(k) else {
                            return Ok(());
                        };
                        post_and_check(agent, &target.base, body, content_type, sops)?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked")))
            })
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    for result in results {
        result?;
    }
    let instances: usize = requests.iter().map(Vec::len).sum();
    Ok((instances as f64 / secs, requests.len()))
}

/// One study search and the StudyInstanceUIDs it must find.
struct Query {
    params: String,
    expected: BTreeSet<String>,
}

/// A fixed mix, in turn: PatientID, PatientName prefix, a 2-month StudyDate range, ModalitiesInStudy with a
/// PatientName prefix, StudyInstanceUID. Values need no percent-encoding (Orthanc does not decode them).
fn query_mix(data: &DataSet, count: usize) -> Vec<Query> {
    let mut rng = StdRng::seed_from_u64(7);
    let matching = |f: &dyn Fn(&StudyModel) -> bool| -> BTreeSet<String> {
        data.studies
            .iter()
            .filter(|s| f(s))
            .map(|s| s.uid.clone())
            .collect()
    };
    (0..count)
        .map(|k| {
            let study = data
                .studies
                .choose(&mut rng)
                .cloned()
                .unwrap_or_else(|| data.studies[0].clone());
            let family = study
                .patient_name
                .split('^')
                .next()
                .unwrap_or_default()
                .to_string();
            match k % 5 {
                0 => Query {
                    params: format!("PatientID={}", study.patient_id),
                    expected: matching(&|s| s.patient_id == study.patient_id),
                },
                1 => {
                    let prefix = family[..3.min(family.len())].to_string();
                    Query {
                        params: format!("PatientName={prefix}*"),
                        expected: matching(&|s| s.patient_name.starts_with(&prefix)),
                    }
                }
                2 => {
                    let from = study.date.clone();
                    let to = date_plus_days(&from, 60);
                    Query {
                        params: format!("StudyDate={from}-{to}"),
                        expected: matching(&|s| s.date >= from && s.date <= to),
                    }
                }
                3 => Query {
                    params: format!("ModalitiesInStudy={}&PatientName={family}*", study.modality),
                    expected: matching(&|s| {
                        s.modality == study.modality && s.patient_name.starts_with(&family)
                    }),
                },
                _ => Query {
                    params: format!("StudyInstanceUID={}", study.uid),
                    expected: matching(&|s| s.uid == study.uid),
                },
            }
        })
        .collect()
}

fn date_plus_days(date: &str, days: i64) -> String {
    let parse = || -> Option<time::Date> {
        let year = date.get(0..4)?.parse().ok()?;
        let month = time::Month::try_from(date.get(4..6)?.parse::<u8>().ok()?).ok()?;
        let day = date.get(6..8)?.parse().ok()?;
        time::Date::from_calendar_date(year, month, day).ok()
    };
    match parse() {
        Some(d) => {
            let d = d + time::Duration::days(days);
            format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
        }
        None => date.to_string(),
    }
}

/// Runs one search and checks its answer; its time in ms.
fn search(agent: &ureq::Agent, base: &str, query: &Query) -> Result<f64> {
    let url = format!("{base}/studies?{}", query.params);
    let started = Instant::now();
    let mut response = agent
        .get(&url)
        .header("Accept", DICOM_JSON)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let elapsed = ms(started.elapsed());
    let found: BTreeSet<String> = match status {
        204 => BTreeSet::new(),
        200 => {
            let answer: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("GET {url}: not JSON: {}", clip(&text)))?;
            answer
                .as_array()
                .with_context(|| format!("GET {url}: not a JSON array"))?
                .iter()
                .filter_map(|item| first_string(item, "0020000D").map(str::to_string))
                .collect()
        }
        _ => bail!("GET {url} answered {status}: {}", clip(&text)),
    };
    ensure!(
        found == query.expected,
        "GET {url}: {} studies found, {} expected ({} missing, {} extra)",
        found.len(),
        query.expected.len(),
        query.expected.difference(&found).count(),
        found.difference(&query.expected).count()
    );
    Ok(elapsed)
}

fn qido_sequential(agent: &ureq::Agent, target: &Target, queries: &[Query]) -> Result<Vec<f64>> {
    // Warm-up: each kind of query once.
    for query in queries.iter().take(5) {
        search(agent, &target.base, query)?;
    }
    queries
        .iter()
        .map(|q| search(agent, &target.base, q))
        .collect()
}

fn qido_concurrent(
    agent: &ureq::Agent,
    target: &Target,
    queries: &[Query],
    clients: usize,
) -> Result<(f64, usize)> {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(query) = queries.get(k) else {
                            return Ok(());
                        };
                        search(agent, &target.base, query)?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked")))
            })
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    for result in results {
        result?;
    }
    Ok((queries.len() as f64 / secs, queries.len()))
}

/// Stores the series (untimed), then times its metadata; the median in ms.
fn series_metadata(
    agent: &ureq::Agent,
    target: &Target,
    series: &[(Uids, Vec<u8>)],
    repeats: usize,
) -> Result<(f64, usize)> {
    for chunk in series.chunks(BATCH) {
        let refs: Vec<&[u8]> = chunk.iter().map(|(_, bytes)| bytes.as_slice()).collect();
        let sops: Vec<String> = chunk.iter().map(|(uids, _)| uids.sop.clone()).collect();
        let (body, content_type) = related_body(&refs);
        post_and_check(agent, &target.base, &body, &content_type, &sops)?;
    }
    let uids = &series[0].0;
    let expected: BTreeSet<&str> = series.iter().map(|(u, _)| u.sop.as_str()).collect();
    let url = format!(
        "{}/studies/{}/series/{}/metadata",
        target.base, uids.study, uids.series
    );
    let mut times = Vec::new();
    for _ in 0..repeats + 1 {
        let started = Instant::now();
        let mut response = agent
            .get(&url)
            .header("Accept", DICOM_JSON)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(256 * MIB)
            .read_to_string()
            .with_context(|| format!("reading the answer of GET {url}"))?;
        times.push(ms(started.elapsed()));
        ensure!(
            status == 200,
            "GET {url} answered {status}: {}",
            clip(&text)
        );
        let answer: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON"))?;
        let found: BTreeSet<&str> = answer
            .as_array()
            .with_context(|| format!("GET {url}: not a JSON array"))?
            .iter()
            .filter_map(|item| first_string(item, "00080018"))
            .collect();
        ensure!(
            found == expected,
            "GET {url}: {} instances described, {} stored",
            found.len(),
            expected.len()
        );
    }
    // The first request warms caches.
    Ok((
        percentile(&times[1..], 0.5),
        repeats + 1 + series.len().div_ceil(BATCH),
    ))
}

/// Streams a synthetic instance as a one-part multipart body (Orthanc takes no single-part STOW).
fn store_streamed(
    agent: &ureq::Agent,
    base: &str,
    instance: SyntheticInstance,
    sop: &str,
) -> Result<()> {
    let boundary = "benchLargeBoundary5e2a";
    let prefix = format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n");
    let suffix = format!("\r\n--{boundary}--\r\n");
    let mut body = io::Cursor::new(prefix.into_bytes())
        .chain(instance)
        .chain(io::Cursor::new(suffix.into_bytes()));
    let url = format!("{base}/studies");
    let mut response = agent
        .post(&url)
        .header(
            "Content-Type",
            format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        )
        .header("Accept", DICOM_JSON)
        .send(SendBody::from_reader(&mut body))
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    ensure!(
        status == 200,
        "POST {url} answered {status}: {}",
        clip(&text)
    );
    ensure!(
        text.contains(sop),
        "POST {url}: the answer does not reference the instance"
    );
    Ok(())
}

/// Stores a large instance (untimed), then retrieves it whole; the median MiB/s.
fn large_retrieve(
    agent: &ureq::Agent,
    target: &Target,
    layout: Layout,
    uids: &Uids,
    repeats: usize,
) -> Result<(f64, usize)> {
    let instance = SyntheticInstance::new(layout, uids);
    let len = instance.len();
    let mut hasher = Sha256::new();
    io::copy(
        &mut SyntheticInstance::new(layout, uids),
        &mut HashWriter(&mut hasher),
    )
    .context("hashing the synthetic instance")?;
    let sha = hasher.finalize();
    store_streamed(agent, &target.base, instance, &uids.sop)?;
    let url = format!(
        "{}/studies/{}/series/{}/instances/{}",
        target.base, uids.study, uids.series, uids.sop
    );
    let mut rates = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let (status, content_type, body) = get_body(agent, &url, MULTIPART_DICOM, len + MIB)?;
        let secs = started.elapsed().as_secs_f64();
        ensure!(
            status == 200,
            "GET {url} answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        );
        let boundary = boundary_of(&content_type)
            .with_context(|| format!("GET {url}: no boundary in {content_type}"))?;
        let part = only_part(&body, &boundary)
            .with_context(|| format!("GET {url}: malformed multipart body"))?;
        ensure!(
            part.len() as u64 == len && Sha256::digest(part) == sha,
            "GET {url}: {} bytes that differ from the {len} stored",
            part.len()
        );
        rates.push(len as f64 / MIB as f64 / secs);
    }
    Ok((percentile(&rates, 0.5), repeats + 1))
}

/// The content of a body's single part, found from both ends (a large part is not scanned).
fn only_part<'a>(body: &'a [u8], boundary: &str) -> Result<&'a [u8]> {
    let head_end = body
        .windows(4)
        .take(4096)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of part headers")?
        + 4;
    let closing = format!("\r\n--{boundary}--");
    let tail_from = body.len().saturating_sub(closing.len() + 64);
    let end = body[tail_from..]
        .windows(closing.len())
        .position(|w| w == closing.as_bytes())
        .context("no closing delimiter")?
        + tail_from;
    ensure!(end >= head_end, "part ends before it starts");
    Ok(&body[head_end..end])
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `multipart/related` of instances as stored.
const MULTIPART_DICOM: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";

/// GETs `url` with `accept`; the status, the Content-Type and the body (at most `limit` bytes).
fn get_body(
    agent: &ureq::Agent,
    url: &str,
    accept: &str,
    limit: u64,
) -> Result<(u16, String, Vec<u8>)> {
    let mut response = agent
        .get(url)
        .header("Accept", accept)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let content_type = header(&response, "content-type");
    let body = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .with_context(|| format!("reading the answer of GET {url}"))?;
    Ok((status, content_type, body))
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Stores the 500-frame instance (untimed), then times frames 1, 250 and 500, `repeats` times each, in turn;
/// the times in ms, by frame.
fn frames(
    agent: &ureq::Agent,
    target: &Target,
    uids: &Uids,
    repeats: usize,
) -> Result<Vec<Vec<f64>>> {
    let instance = SyntheticInstance::new(MULTI_FRAME, uids);
    let expected: Vec<Vec<u8>> = FRAMES_ASKED.iter().map(|&n| instance.frame(n)).collect();
    store_streamed(agent, &target.base, instance, &uids.sop)?;
    let base = format!(
        "{}/studies/{}/series/{}/instances/{}/frames",
        target.base, uids.study, uids.series, uids.sop
    );
    let mut times = vec![Vec::new(); FRAMES_ASKED.len()];
    for round in 0..=repeats {
        for (k, number) in FRAMES_ASKED.iter().enumerate() {
            let url = format!("{base}/{number}");
            let started = Instant::now();
            // Orthanc needs the transfer syntax named; both serve native frames as Explicit VR Little Endian.
            let (status, content_type, body) = get_body(
                agent,
                &url,
                "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.1",
                16 * MIB,
            )?;
            let elapsed = ms(started.elapsed());
            ensure!(
                status == 200,
                "GET {url} answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            );
            let boundary = boundary_of(&content_type)
                .with_context(|| format!("GET {url}: no boundary in {content_type}"))?;
            let frame = first_part(&body, &boundary)
                .with_context(|| format!("GET {url}: malformed multipart"))?;
            ensure!(
                frame == expected[k],
                "GET {url}: {} bytes that are not frame {number}",
                frame.len()
            );
            // The first round warms caches.
            if round > 0 {
                times[k].push(elapsed);
            }
        }
    }
    Ok(times)
}

// ---------------------------------------------------------------------------------------------------------------
// Orthanc

/// The DICOMweb plugin of the Debian package.
fn dicomweb_plugin() -> Result<PathBuf> {
    let candidates = [
        "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
        "/usr/lib/orthanc/plugins/libOrthancDicomWeb.so",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .with_context(|| {
            format!("Orthanc's DICOMweb plugin is not in {candidates:?}: install the Debian package orthanc-dicomweb")
        })
}

fn orthanc_version(binary: &Path) -> String {
    let orthanc = Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Orthanc".into());
    let plugin = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "orthanc-dicomweb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    format!("{orthanc} with its DICOMweb plugin {plugin} (Debian packages)")
}

/// A running Orthanc with a configuration and storage of its own.
struct Orthanc {
    child: Option<Child>,
    pid: u32,
    port: u16,
    log: PathBuf,
}

impl Orthanc {
    fn start(binary: &Path, plugin: &Path, dir: &Path, agent: &ureq::Agent) -> Result<Orthanc> {
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage)
            .with_context(|| format!("creating {}", storage.display()))?;
        let port = server::free_port()?;
        let config = serde_json::json!({
            "Name": "dicomweb-bench",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "HttpPort": port,
            // Orthanc cannot bind to one address: it listens on all and refuses other hosts.
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "DicomServerEnabled": false,
            "StorageCompression": false,
            "HttpCompressionEnabled": false,
            "SaveJobs": false,
            "Plugins": [plugin],
            "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": false },
        });
        let config_path = dir.join("orthanc.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let log = dir.join("orthanc.log");
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let log_file_too = log_file
            .try_clone()
            .context("duplicating the log's handle")?;
        let child = Command::new(binary)
            .arg(&config_path)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_file_too)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut orthanc = Orthanc {
            pid: child.id(),
            child: Some(child),
            port,
            log,
        };
        let url = format!("{}/studies", orthanc.dicomweb_root());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = orthanc.child.as_mut()
                && let Some(status) = child.try_wait().context("waiting for Orthanc")?
            {
                bail!(
                    "Orthanc exited ({status}) at start; its log:\n{}",
                    orthanc.log_tail()
                );
            }
            let answer = agent
                .get(&url)
                .header("Accept", DICOM_JSON)
                .config()
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .call();
            if let Ok(response) = answer
                && matches!(response.status().as_u16(), 200 | 204)
            {
                return Ok(orthanc);
            }
            if Instant::now() > deadline {
                bail!(
                    "Orthanc did not answer {url} within 60 s; its log:\n{}",
                    orthanc.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn dicomweb_root(&self) -> String {
        format!("http://127.0.0.1:{}/dicom-web", self.port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

fn format_value(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Three significant digits.
fn format_ratio(ratio: f64) -> String {
    if ratio >= 1.0 {
        format_value(ratio)
    } else {
        let decimals = (2.0 - ratio.log10().floor()).clamp(2.0, 6.0) as usize;
        format!("{ratio:.decimals$}")
    }
}

/// The markdown table of both servers' figures and the ratios.
fn table(outcome: &Outcome) -> String {
    let mut out = String::from(
        "| Measure | dicomweb | Orthanc | dicomweb / Orthanc | |\n| --- | --- | --- | --- | --- |\n",
    );
    for figure in &outcome.figures {
        let [ours, theirs] = figure.values;
        let ratio = ours / theirs;
        let better = if figure.higher_is_better {
            ratio
        } else {
            1.0 / ratio
        };
        let verdict = if better >= 1.0 {
            format!("{better:.1}x better")
        } else {
            format!("**{:.1}x worse**", 1.0 / better)
        };
        let _ = writeln!(
            out,
            "| {} | {} {unit} | {} {unit} | {} | {verdict} |",
            figure.name,
            format_value(ours),
            format_value(theirs),
            format_ratio(ratio),
            unit = figure.unit
        );
    }
    out
}

fn markdown(
    args: &Args,
    sizes: &Sizes,
    outcome: &Outcome,
    table: &str,
    machine: &Machine,
    peer: &str,
) -> String {
    let command = if args.quick {
        "cargo xtask bench --quick"
    } else {
        "cargo xtask bench"
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "The claim checked: dicomweb is faster than the servers people use today. Peer: {peer}, started by the \
         command on \
         127.0.0.1 with a temporary storage directory and SQLite index, no compression, its DICOMweb plugin's \
         defaults (Orthanc cannot bind to one address: it listens on every interface with `RemoteAccessAllowed: \
         false`). dicomweb: a release build, `--workers 2`, a temporary data directory on the same disk; it answers a \
         store only once the file and the catalogue commit that names it are fsynced (group commit batches \
         concurrent requests), and its search index follows in the background, committed 250 ms after a write \
         (a search sees every store acknowledged before it: those the index has not committed yet are matched in \
         memory), which is what its STOW and loaded-search figures pay for.\n"
    );
    let _ = writeln!(
        out,
        "Method: `{command}` generates one synthetic data set and runs the same client workload (Rust, ureq, \
         HTTP/1.1 keep-alive, on the same machine) against both servers, phase by phase, alternating which goes \
         first: STOW-RS of 10 KiB instances ({} one per request from 1 client, {} one per request from 8 clients, \
         {} requests of 50; `multipart/related; type=\"application/dicom\"`, the only form both take); QIDO-RS \
         study searches over the {} studies just stored, a fixed mix of PatientID, PatientName prefix, a 2-month \
         StudyDate range, ModalitiesInStudy with a name prefix and StudyInstanceUID ({} sequential queries for \
         p50/p99 after a warm-up, {} from 8 clients for throughput); the metadata of a 600-instance series ({} \
         times after a warm-up); whole retrieve of a {} MiB instance as `multipart/related; \
         type=\"application/dicom\"` ({} times); frames 1, 250 and 500 of a 500-frame instance as \
         `application/octet-stream` in Explicit VR Little Endian ({} times each after a warm-up); peak RSS \
         (VmHWM) of each server process over the whole run. Then the write-path figures: each server's CPU time \
         (user + system, from `/proc/<pid>/stat`) per instance of each STOW phase, read after a search and \
         a second more so that work left behind is counted; the cost of `fdatasync` and directory \
         `fsync` on this disk; {} searches of the mix while 8 clients store other instances; the 600-instance \
         series retrieved whole ({} times) and one of its instances as multipart and single part ({} times); \
         and, against dicomweb only, an ingest of {} more instances from 8 clients with its rate per block of \
         {}. Every response is checked: STOW answers must \
         reference every instance sent and no failure, searches must find exactly the studies the generator's \
         model says match, metadata must describe exactly the 600 instances, retrieved instances must be the \
         stored files (the large one by SHA-256, the series by part count, sizes and UIDs), frames must be byte for byte the generated ones; {} responses were \
         checked. The machine is shared and noisy: compare the ratios, which come from the same run.\n",
        sizes.stow_sequential,
        sizes.stow_concurrent,
        sizes.stow_batches,
        outcome.qido_studies,
        sizes.qido_latency,
        sizes.qido_throughput,
        sizes.metadata_repeats,
        sizes.large_mib,
        sizes.large_repeats,
        sizes.frame_repeats,
        sizes.qido_under_load,
        sizes.series_retrieve_repeats,
        sizes.small_retrieve_repeats,
        sizes.ingest_instances,
        sizes.ingest_block,
        outcome.checked_responses,
    );
    out.push_str(table);
    if !outcome.write_path.is_empty() {
        out.push('\n');
        out.push_str(&outcome.write_path);
    }
    let behind: Vec<&str> = outcome
        .figures
        .iter()
        .filter(|f| {
            let [ours, theirs] = f.values;
            if f.higher_is_better {
                ours < theirs
            } else {
                ours > theirs
            }
        })
        .map(|f| f.name.as_str())
        .collect();
    let _ = writeln!(
        out,
        "\nResult: dicomweb is ahead on {} of {} figures{}",
        outcome.figures.len() - behind.len(),
        outcome.figures.len(),
        if behind.is_empty() {
            ".".to_string()
        } else {
            format!("; **behind on: {}**.", behind.join("; "))
        }
    );
    let _ = writeln!(
        out,
        "\nMicro-benchmarks (criterion; not run by this command): `cargo bench -p dicomweb-multipart` (multipart \
         read and write), `cargo bench -p dicomweb-json` (DICOM JSON write and read), `cargo bench -p \
         dicomweb-index` (study searches, instances of a study, a change feed page over 10,000 instances)."
    );
    let _ = writeln!(
        out,
        "\n| | |\n| --- | --- |\n| Machine | {machine} |\n| Date | {} |\n| Command | {command} |",
        machine::now_utc()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_mix_expectations_follow_the_model() {
        let data = DataSet::new(40).unwrap();
        let queries = query_mix(&data, 10);
        assert!(queries.iter().all(|q| !q.expected.is_empty()));
        assert!(
            queries[4].params.starts_with("StudyInstanceUID=") && queries[4].expected.len() == 1
        );
        assert!(
            queries
                .iter()
                .all(|q| !q.params.contains(' ') && !q.params.contains('^'))
        );
    }

    #[test]
    fn only_part_finds_the_content() {
        let (body, content_type) = related_body(&[b"hello\r\nworld".as_slice()]);
        let boundary = boundary_of(&content_type).unwrap();
        assert_eq!(only_part(&body, &boundary).unwrap(), b"hello\r\nworld");
    }

    #[test]
    fn ratios_keep_three_significant_digits() {
        assert_eq!(format_ratio(0.003377), "0.00338");
        assert_eq!(format_ratio(0.14), "0.140");
        assert_eq!(format_ratio(4.17), "4.17");
        assert_eq!(format_ratio(296.1), "296");
    }

    #[test]
    fn dates_add_days() {
        assert_eq!(date_plus_days("20201231", 1), "20210101");
        assert_eq!(date_plus_days("20200201", 60), "20200401");
    }
}
