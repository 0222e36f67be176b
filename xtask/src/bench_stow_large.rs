//! `cargo xtask bench-stow-large`: the server's peak memory while it stores (and serves back) one huge instance.
//!
//! The requirement: a request body is never held whole in memory, so a 2 GiB instance is stored with bounded
//! memory (target: peak RSS under 256 MiB). The same bound is measured while the instance is retrieved as stored
//! and transcoded (issue 13: large instances are transcoded frame by frame as they are sent). The instance is generated while it is sent, so the client holds neither
//! it nor a file of it; the server's memory is read from `/proc` (Linux only).

use crate::machine::{self, Machine};
use crate::report;
use crate::rss::{self, Sampler, Samples, Status};
use crate::server::{self, Server};
use crate::synthetic::{Layout, MIB, SyntheticInstance, Uids};
use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use ureq::SendBody;

const TARGET_MIB: f64 = 256.0;
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
const SECTION: &str = "Large instance store (peak memory)";
const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
/// Transfer syntaxes whose Pixel Data is not encapsulated (the body does not end with a delimiter).
const NATIVE_SYNTAXES: [&str; 3] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
];
/// (FFFE,E0DD) with length 0: the last bytes of a Part 10 file whose encapsulated Pixel Data ends it.
const SEQUENCE_DELIMITATION_ITEM: [u8; 8] = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Approximate size of the instance in MiB (its pixel data; under 4096, Pixel Data's length is 32-bit).
    #[arg(long, default_value_t = 2048, value_name = "MIB")]
    size_mib: u64,
    /// Number of frames [default: frames of 1024 x 1024 16-bit pixels, 2 MiB each].
    #[arg(long, value_name = "N")]
    frames: Option<u32>,
    /// The transfer syntax the instance is also retrieved in, transcoded frame by frame as it is sent
    /// [default: JPEG-LS lossless].
    #[arg(long, default_value = JPEG_LS_LOSSLESS, value_name = "UID")]
    transcode_to: String,
    /// Send `multipart/related; type="application/dicom"` instead of a single `application/dicom` body.
    #[arg(long)]
    multipart: bool,
    /// Keep the server's temporary data directory and log.
    #[arg(long)]
    keep: bool,
    /// Do not write the results to docs/benchmarks.md.
    #[arg(long)]
    no_report: bool,
    /// Also write every RSS sample (one each 50 ms) to this CSV file.
    #[arg(long, value_name = "FILE")]
    samples_csv: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    let size = args
        .size_mib
        .checked_mul(MIB)
        .context("--size-mib is too large")?;
    let layout = Layout::for_size(size, args.frames)?;
    let root = server::workspace_root();
    let target_dir = server::target_dir(&root)?;
    eprintln!(
        "xtask: cargo build --release --bin dicomweb (target directory {})",
        target_dir.display()
    );
    let binary = server::build_release(&root, &target_dir)?;

    let work = tempfile::Builder::new()
        .prefix("dicomweb-bench-stow-large-")
        .tempdir()
        .context("creating a temporary directory for the server's data")?;
    let agent = ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .build(),
    );
    let outcome = measure(args, layout, &binary, work.path(), &agent);
    if args.keep {
        let kept = work.keep();
        eprintln!(
            "xtask: kept the server's data and log in {}",
            kept.display()
        );
    } else {
        let path = work.path().to_path_buf();
        work.close()
            .with_context(|| format!("removing {}", path.display()))?;
    }
    let outcome = outcome?;

    if let Some(csv) = &args.samples_csv {
        write_samples_csv(csv, &outcome)?;
    }
    let machine = Machine::describe();
    let rows = rows(&outcome, &machine);
    crate::report::print_rows(&rows);
    if !outcome.failures.is_empty() {
        bail!(
            "correctness checks failed (docs/benchmarks.md left as it was):\n- {}",
            outcome.failures.join("\n- ")
        );
    }
    if !args.no_report {
        let path = root.join("docs").join("benchmarks.md");
        report::update_section(&path, SECTION, &markdown(&outcome, &rows))?;
        eprintln!("xtask: wrote \"{SECTION}\" in {}", path.display());
    }
    Ok(())
}

/// One measured request.
struct Phase {
    /// Bytes of the instance sent or received.
    bytes: u64,
    /// Until the last byte of the body was sent (store) or received (retrieve).
    secs_body: f64,
    /// Until the response was complete.
    secs_total: f64,
    /// VmHWM after the request.
    hwm_kib: u64,
    /// Whether VmHWM was reset just before the request (else it is the peak since the server started).
    hwm_reset: bool,
    samples: Samples,
}

impl Phase {
    fn throughput_mib_s(&self) -> f64 {
        self.bytes as f64 / MIB as f64 / self.secs_body.max(1e-9)
    }
}

struct Outcome {
    layout: Layout,
    multipart: bool,
    instance_len: u64,
    sha256: String,
    idle: Status,
    store: Phase,
    retrieve: Option<Phase>,
    /// The retrieve in `transcode_to`, and the syntax.
    transcoded: Option<Phase>,
    transcode_to: String,
    /// Correctness checks that failed, in words.
    failures: Vec<String>,
}

fn measure(
    args: &Args,
    layout: Layout,
    binary: &Path,
    work: &Path,
    agent: &ureq::Agent,
) -> Result<Outcome> {
    let mut server = Server::start(binary, &work.join("data"), &work.join("server.log"), agent)?;
    let outcome = measure_running(args, layout, &server, agent);
    let outcome = outcome.with_context(|| {
        format!(
            "benchmark failed; the server's log ends with:\n{}\n",
            server.log_tail()
        )
    });
    let stopped = server.stop();
    let outcome = outcome?;
    stopped?;
    Ok(outcome)
}

fn measure_running(
    args: &Args,
    layout: Layout,
    server: &Server,
    agent: &ureq::Agent,
) -> Result<Outcome> {
    let pid = server.pid();
    let base = server.base_url();
    let uids = Uids::unique();
    let instance = SyntheticInstance::new(layout, &uids);
    let instance_len = instance.len();
    let last_frame = instance.frame(layout.frames);
    let idle = rss::read_status(pid)?;
    let mut failures = Vec::new();

    // Store.
    eprintln!(
        "xtask: storing a {:.1} MiB instance ({} frames of {} x {}) in the server (pid {pid}) at {base}",
        instance_len as f64 / MIB as f64,
        layout.frames,
        layout.rows,
        layout.columns
    );
    let hwm_reset = rss::reset_peak(pid).is_ok();
    let mut source = Hashing::new(instance, instance_len);
    let sampler = Sampler::start(pid, SAMPLE_EVERY);
    let started = Instant::now();
    let url = format!("{base}/studies");
    let request = agent.post(&url).header("Accept", "application/dicom+json");
    let response = if args.multipart {
        let boundary = format!("dicomweb-bench-{}", uids.sop.replace('.', ""));
        let prefix = format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n");
        let suffix = format!("\r\n--{boundary}--\r\n");
        let mut body = io::Cursor::new(prefix.into_bytes())
            .chain(&mut source)
            .chain(io::Cursor::new(suffix.into_bytes()));
        request
            .header(
                "Content-Type",
                format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
            )
            .send(SendBody::from_reader(&mut body))
    } else {
        request
            .header("Content-Type", "application/dicom")
            .send(SendBody::from_reader(&mut source))
    };
    let secs_total = started.elapsed().as_secs_f64();
    let samples = sampler.finish();
    let hwm_kib = rss::read_status(pid)?.hwm_kib;
    let mut response = response.with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let answer = response.body_mut().read_to_string().unwrap_or_default();
    ensure!(status == 200, "POST {url} answered {status}: {answer}");
    ensure!(
        source.bytes == instance_len,
        "sent {} bytes of a {instance_len}-byte instance",
        source.bytes
    );
    let sent_at = source.finished_at.unwrap_or_else(Instant::now);
    let sha256 = hex::encode(source.hasher.finalize());
    let store = Phase {
        bytes: instance_len,
        secs_body: sent_at.duration_since(started).as_secs_f64(),
        secs_total,
        hwm_kib,
        hwm_reset,
        samples,
    };
    eprintln!(
        "xtask: stored in {secs_total:.1} s; peak RSS {:.1} MiB",
        kib_to_mib(hwm_kib)
    );

    // The last frame, by byte range.
    let instance_url = format!(
        "{base}/studies/{}/series/{}/instances/{}",
        uids.study, uids.series, uids.sop
    );
    let frame_url = format!("{instance_url}/frames/{}", layout.frames);
    match fetch_frame(agent, &frame_url, layout.frame_bytes()) {
        Ok(frame) if frame == last_frame => {}
        Ok(frame) => failures.push(format!(
            "GET {frame_url}: {} bytes differ from the {} sent (first difference at byte {})",
            frame.len(),
            last_frame.len(),
            frame
                .iter()
                .zip(&last_frame)
                .position(|(a, b)| a != b)
                .unwrap_or(frame.len().min(last_frame.len()))
        )),
        Err(e) => failures.push(format!("{e:#}")),
    }

    // Metadata.
    let metadata_url = format!("{instance_url}/metadata");
    match get_text(agent, &metadata_url, "application/dicom+json") {
        Ok((200, text)) if text.contains(&uids.sop) => {}
        Ok((200, _)) => failures.push(format!(
            "GET {metadata_url}: the metadata does not name the SOP instance"
        )),
        Ok((status, text)) => {
            failures.push(format!("GET {metadata_url} answered {status}: {text}"))
        }
        Err(e) => failures.push(format!("{e:#}")),
    }

    // The whole instance, streamed to a hash.
    eprintln!("xtask: retrieving the instance");
    let retrieve = match retrieve(
        agent,
        &instance_url,
        "application/dicom; transfer-syntax=*",
        pid,
        instance_len,
    ) {
        Ok(Retrieved { phase, sha, .. }) => {
            if phase.bytes != instance_len {
                failures.push(format!(
                    "GET {instance_url}: {} bytes retrieved, {instance_len} stored",
                    phase.bytes
                ));
            } else if sha != sha256 {
                failures.push(format!(
                    "GET {instance_url}: SHA-256 {sha} retrieved, {sha256} stored"
                ));
            }
            Some(phase)
        }
        Err(e) => {
            failures.push(format!("{e:#}"));
            None
        }
    };

    // The whole instance again, transcoded frame by frame as it is sent.
    let to = &args.transcode_to;
    eprintln!("xtask: retrieving the instance transcoded to {to}");
    let accept = format!("application/dicom; transfer-syntax={to}");
    let transcoded = match self::retrieve(agent, &instance_url, &accept, pid, instance_len) {
        Ok(retrieved) => {
            let wanted = format!("application/dicom; transfer-syntax={to}");
            if retrieved.content_type != wanted {
                failures.push(format!(
                    "GET {instance_url} as {to}: Content-Type \"{}\", not \"{wanted}\"",
                    retrieved.content_type
                ));
            }
            if !NATIVE_SYNTAXES.contains(&to.as_str())
                && retrieved.last_bytes != SEQUENCE_DELIMITATION_ITEM
            {
                failures.push(format!(
                    "GET {instance_url} as {to}: the body does not end with the encapsulated Pixel Data's \
                     sequence delimiter (cut short?), but with {:02x?}",
                    retrieved.last_bytes
                ));
            }
            Some(retrieved.phase)
        }
        Err(e) => {
            failures.push(format!("{e:#}"));
            None
        }
    };

    Ok(Outcome {
        layout,
        multipart: args.multipart,
        instance_len,
        sha256,
        idle,
        store,
        retrieve,
        transcoded,
        transcode_to: args.transcode_to.clone(),
        failures,
    })
}

/// `GET` a single frame as `multipart/related; type="application/octet-stream"`; returns the part's bytes.
fn fetch_frame(agent: &ureq::Agent, url: &str, frame_bytes: u64) -> Result<Vec<u8>> {
    let mut response = agent
        .get(url)
        .header(
            "Accept",
            "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
        )
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response
        .body_mut()
        .with_config()
        .limit(frame_bytes + MIB)
        .read_to_vec()
        .with_context(|| format!("reading the answer of GET {url}"))?;
    ensure!(
        status == 200,
        "GET {url} answered {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(2000)])
    );
    let boundary = boundary_of(&content_type)
        .with_context(|| format!("GET {url}: no boundary in Content-Type \"{content_type}\""))?;
    first_part(&body, &boundary).with_context(|| format!("GET {url}: malformed multipart body"))
}

fn get_text(agent: &ureq::Agent, url: &str, accept: &str) -> Result<(u16, String)> {
    let mut response = agent
        .get(url)
        .header("Accept", accept)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the answer of GET {url}"))?;
    Ok((status, text))
}

/// What [`retrieve`] got.
struct Retrieved {
    phase: Phase,
    /// SHA-256 of the body, in hex.
    sha: String,
    content_type: String,
    /// The body's last 8 bytes (fewer if it is shorter).
    last_bytes: Vec<u8>,
}

/// `GET` the instance as `accept` (an `application/dicom` type), hashing it as it arrives, while sampling the
/// server's memory.
fn retrieve(
    agent: &ureq::Agent,
    url: &str,
    accept: &str,
    pid: u32,
    expected_len: u64,
) -> Result<Retrieved> {
    let hwm_reset = rss::reset_peak(pid).is_ok();
    let sampler = Sampler::start(pid, SAMPLE_EVERY);
    let started = Instant::now();
    let result = (|| -> Result<(u64, String, String, Vec<u8>)> {
        let response = agent
            .get(url)
            .header("Accept", accept)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut reader = response.into_body().into_reader();
        if status != 200 {
            let mut text = String::new();
            let _ = reader.take(2000).read_to_string(&mut text);
            bail!("GET {url} answered {status}: {text}");
        }
        let mut sink = Hashing::new(io::empty(), expected_len);
        let mut buf = vec![0u8; 256 * 1024];
        let mut last_bytes = Vec::new();
        loop {
            let n = reader
                .read(&mut buf)
                .with_context(|| format!("reading the answer of GET {url}"))?;
            if n == 0 {
                break;
            }
            sink.consume(&buf[..n]);
            last_bytes.extend_from_slice(&buf[n.saturating_sub(8)..n]);
            let excess = last_bytes.len().saturating_sub(8);
            last_bytes.drain(..excess);
        }
        Ok((
            sink.bytes,
            hex::encode(sink.hasher.finalize()),
            content_type,
            last_bytes,
        ))
    })();
    let secs = started.elapsed().as_secs_f64();
    let samples = sampler.finish();
    let hwm_kib = rss::read_status(pid)?.hwm_kib;
    let (bytes, sha, content_type, last_bytes) = result?;
    eprintln!(
        "xtask: retrieved {:.1} MiB in {secs:.1} s; peak RSS {:.1} MiB",
        bytes as f64 / MIB as f64,
        kib_to_mib(hwm_kib)
    );
    Ok(Retrieved {
        phase: Phase {
            bytes,
            secs_body: secs,
            secs_total: secs,
            hwm_kib,
            hwm_reset,
            samples,
        },
        sha,
        content_type,
        last_bytes,
    })
}

/// A reader that hashes and counts what passes through it, notes when it ended and reports progress.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    total: u64,
    finished_at: Option<Instant>,
}

impl<R> Hashing<R> {
    fn new(inner: R, total: u64) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            total,
            finished_at: None,
        }
    }

    fn consume(&mut self, data: &[u8]) {
        const PROGRESS_EVERY: u64 = 256 * MIB;
        self.hasher.update(data);
        let before = self.bytes;
        self.bytes += data.len() as u64;
        if before / PROGRESS_EVERY != self.bytes / PROGRESS_EVERY {
            eprintln!(
                "xtask:   {:>5} of {} MiB",
                self.bytes / MIB,
                self.total / MIB
            );
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.finished_at.get_or_insert_with(Instant::now);
        }
        self.consume(&buf[..n]);
        Ok(n)
    }
}

/// The `boundary` parameter of a multipart media type.
pub(crate) fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

/// The content of the first part of a multipart body.
pub(crate) fn first_part(body: &[u8], boundary: &str) -> Result<Vec<u8>> {
    let delimiter = format!("--{boundary}");
    let start = find(body, delimiter.as_bytes(), 0).context("no opening delimiter")?;
    let headers_end = find(body, b"\r\n\r\n", start).context("no end of part headers")?;
    let content_start = headers_end + 4;
    let closing = format!("\r\n--{boundary}");
    let content_end =
        find(body, closing.as_bytes(), content_start).context("no delimiter after the part")?;
    Ok(body[content_start..content_end].to_vec())
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| from + i)
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn peak_words(phase: &Phase) -> String {
    let mib = kib_to_mib(phase.hwm_kib);
    if phase.hwm_reset {
        format!("{mib:.1} MiB")
    } else {
        format!("{mib:.1} MiB (since the server started: VmHWM could not be reset)")
    }
}

fn samples_words(samples: &Samples) -> String {
    format!(
        "max VmRSS {:.1} MiB (anonymous {:.1}, file-backed {:.1}, shared {:.1}), {} samples",
        kib_to_mib(samples.peak.rss_kib),
        kib_to_mib(samples.peak.anon_kib),
        kib_to_mib(samples.peak.file_kib),
        kib_to_mib(samples.peak.shmem_kib),
        samples.series.len()
    )
}

/// The results as (label, value) rows, shared by the terminal and the markdown table.
fn rows(outcome: &Outcome, machine: &Machine) -> Vec<(String, String)> {
    let layout = outcome.layout;
    let store = &outcome.store;
    let met = kib_to_mib(store.hwm_kib) < TARGET_MIB;
    let mut rows = vec![
        (
            "Instance".to_string(),
            format!(
                "{:.1} MiB ({} bytes): {} frames of {} x {} 16-bit MONOCHROME2, explicit VR little endian, sent as {} (chunked)",
                outcome.instance_len as f64 / MIB as f64,
                outcome.instance_len,
                layout.frames,
                layout.rows,
                layout.columns,
                if outcome.multipart {
                    "multipart/related; type=\"application/dicom\""
                } else {
                    "application/dicom"
                }
            ),
        ),
        (
            "Server RSS before the store".to_string(),
            format!("{:.1} MiB", kib_to_mib(outcome.idle.rss_kib)),
        ),
        (
            "Peak RSS during the store (VmHWM)".to_string(),
            format!(
                "{} (target < {TARGET_MIB:.0} MiB: {})",
                peak_words(store),
                if met { "met" } else { "NOT met" }
            ),
        ),
        (
            "RSS sampled during the store".to_string(),
            samples_words(&store.samples),
        ),
        (
            "Upload".to_string(),
            format!(
                "{:.1} MiB/s ({:.1} s until the last byte was sent)",
                store.throughput_mib_s(),
                store.secs_body
            ),
        ),
        (
            "Store time (until the 200)".to_string(),
            format!("{:.1} s", store.secs_total),
        ),
    ];
    if let Some(retrieve) = &outcome.retrieve {
        rows.push((
            "Peak RSS during the retrieve (VmHWM)".to_string(),
            peak_words(retrieve),
        ));
        rows.push((
            "RSS sampled during the retrieve".to_string(),
            samples_words(&retrieve.samples),
        ));
        rows.push((
            "Retrieve (application/dicom)".to_string(),
            format!(
                "{:.1} MiB/s ({:.1} s, streamed to SHA-256)",
                retrieve.throughput_mib_s(),
                retrieve.secs_total
            ),
        ));
    }
    if let Some(transcoded) = &outcome.transcoded {
        let met = kib_to_mib(transcoded.hwm_kib) < TARGET_MIB;
        rows.push((
            format!(
                "Peak RSS during the retrieve transcoded to {} (VmHWM)",
                outcome.transcode_to
            ),
            format!(
                "{} (target < {TARGET_MIB:.0} MiB: {})",
                peak_words(transcoded),
                if met { "met" } else { "NOT met" }
            ),
        ));
        rows.push((
            "RSS sampled during the transcoded retrieve".to_string(),
            samples_words(&transcoded.samples),
        ));
        rows.push((
            format!("Retrieve transcoded to {}", outcome.transcode_to),
            format!(
                "{:.1} MiB of the stored instance per second ({:.1} s; {:.1} MiB sent, streamed to SHA-256)",
                outcome.instance_len as f64 / MIB as f64 / transcoded.secs_total.max(1e-9),
                transcoded.secs_total,
                transcoded.bytes as f64 / MIB as f64
            ),
        ));
    }
    rows.push((
        "Checks".to_string(),
        if outcome.failures.is_empty() {
            format!(
                "passed: store 200, last frame ({}) byte for byte, metadata 200, retrieved length and SHA-256 ({}…) equal to the sent, transcoded retrieve labelled {} and ending with its Pixel Data's sequence delimiter",
                layout.frames,
                &outcome.sha256[..16],
                outcome.transcode_to
            )
        } else {
            format!("FAILED: {}", outcome.failures.join("; "))
        },
    ));
    rows.push(("Machine".to_string(), machine.to_string()));
    rows.push(("Date".to_string(), machine::now_utc()));
    rows.push(("Command".to_string(), command_line()));
    rows
}

/// How this run was invoked, as a `cargo xtask` command.
fn command_line() -> String {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "\"'$`\\".contains(c)) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        })
        .collect();
    format!("cargo xtask {}", words.join(" "))
}

fn markdown(outcome: &Outcome, rows: &[(String, String)]) -> String {
    let peak = kib_to_mib(outcome.store.hwm_kib);
    let met = peak < TARGET_MIB;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Requirement: a request body is never held whole in memory, so a 2 GiB instance is stored with bounded \
         memory; and a large multi-frame instance is transcoded frame by frame as it is sent, with memory bounded by \
         a few frames. **Target: the server's peak RSS (VmHWM) while storing it, and while sending it transcoded, \
         stays under {TARGET_MIB:.0} MiB.**\n"
    );
    let _ = writeln!(
        out,
        "Method: `cargo xtask bench-stow-large` builds the server in release mode, starts it on 127.0.0.1 with a \
         fresh data directory and `--workers 2`, generates a synthetic multi-frame instance while sending it (the \
         client holds neither the instance nor a file of it) in one chunked `POST /studies`, and samples the \
         server's VmRSS every 50 ms from `/proc/<pid>/status`; VmHWM is reset (`/proc/<pid>/clear_refs`) before, \
         and read after, the store and each retrieve. Correctness: the store answers 200, the last frame comes back \
         byte for byte, the instance metadata answers 200, and the whole instance retrieved as `application/dicom` \
         has the length and SHA-256 of what was sent; retrieved again in `--transcode-to` (JPEG-LS lossless by \
         default: the server transcodes an instance this large frame by frame as it sends it), it is labelled with \
         that syntax and ends with its Pixel Data's sequence delimiter (the e2e test \
         `test_streamed_transcoding.py` checks such transcodes frame for frame). Options: `--size-mib`, \
         `--frames`, `--transcode-to UID`, `--multipart`, `--keep`, \
         `--no-report`, `--samples-csv FILE`. Times and throughputs move with whatever else the machine runs (the \
         client, which generates and hashes the instance, shares its cores with the server); the peak memory is the \
         number the target is about.\n"
    );
    let _ = writeln!(out, "| | |\n| --- | --- |");
    for (key, value) in rows {
        let _ = writeln!(out, "| {key} | {} |", value.replace('|', "\\|"));
    }
    let _ = writeln!(
        out,
        "\nResult: peak RSS during the store {peak:.1} MiB, target < {TARGET_MIB:.0} MiB: **{}**.",
        if met { "met" } else { "not met" }
    );
    if let Some(transcoded) = &outcome.transcoded {
        let peak = kib_to_mib(transcoded.hwm_kib);
        let _ = writeln!(
            out,
            "Peak RSS while sending it transcoded to {} {peak:.1} MiB, target < {TARGET_MIB:.0} MiB: **{}**.",
            outcome.transcode_to,
            if peak < TARGET_MIB { "met" } else { "not met" }
        );
    }
    out
}

fn write_samples_csv(path: &Path, outcome: &Outcome) -> Result<()> {
    let mut csv = String::from("phase,seconds,vmrss_kib,rssanon_kib,rssfile_kib\n");
    let phases = [
        ("store", Some(&outcome.store)),
        ("retrieve", outcome.retrieve.as_ref()),
        ("transcoded retrieve", outcome.transcoded.as_ref()),
    ];
    for (name, phase) in phases {
        for (secs, rss, anon, file) in phase
            .map(|p| p.samples.series.as_slice())
            .unwrap_or_default()
        {
            let _ = writeln!(csv, "{name},{secs:.3},{rss},{anon},{file}");
        }
    }
    std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_boundary_and_the_first_part() {
        let ct = "multipart/related; type=\"application/octet-stream\"; boundary=\"abc123\"";
        assert_eq!(boundary_of(ct).as_deref(), Some("abc123"));
        assert_eq!(
            boundary_of("multipart/related; Boundary=x").as_deref(),
            Some("x")
        );
        assert_eq!(boundary_of("application/dicom"), None);
        let body = b"--abc123\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\r\n\x02\r\n--abc123--\r\n";
        assert_eq!(first_part(body, "abc123").unwrap(), b"\x00\x01\r\n\x02");
        assert!(first_part(b"--abc123\r\n\r\nno end", "abc123").is_err());
    }

    #[test]
    fn hashing_reader_counts_hashes_and_notes_the_end() {
        let mut reader = Hashing::new(&b"hello"[..], 5);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(reader.bytes, 5);
        assert!(reader.finished_at.is_some());
        assert_eq!(
            hex::encode(reader.hasher.finalize()),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }
}
