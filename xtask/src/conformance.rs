//! `cargo xtask conformance`: every DICOMweb transaction driven by independent clients, results by PS3.18 section.
//!
//! The checks themselves are Python (`tests/conformance/run_conformance.py`), because the point is that clients we
//! did not write (dicomweb-client, pydicom, requests) and a validator we did not write (dciodvfy from dicom3tools)
//! judge the server. This command provides what they need: the server (a debug build on 127.0.0.1 with a fresh
//! data directory, or `--url`), a virtual environment with the pinned clients, and dciodvfy (from Debian, installed
//! when missing); then it prints the results and fails on any failure.

use crate::prerequisites;
use crate::server::{self, Server};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Check the server at this root URL (its routes also under /v1 and /v2) instead of starting one.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Storage of the started server (`serve --storage`: a path, `file:///dir`, `memory://`, `s3://...`).
    #[arg(long, value_name = "URL", conflicts_with = "url")]
    storage: Option<String>,
    /// Start a release build of the server instead of a debug build.
    #[arg(long, conflicts_with = "url")]
    release: bool,
    /// Keep the started server's data directory and log.
    #[arg(long)]
    keep: bool,
    /// Print every check as it runs and the Python traceback of every failed check.
    #[arg(long)]
    verbose: bool,
}

#[derive(serde::Deserialize)]
struct Report {
    results: Vec<Row>,
    dciodvfy_runs: u64,
}

#[derive(serde::Deserialize)]
struct Row {
    section: String,
    check: String,
    status: String,
    detail: String,
}

pub fn run(args: &Args) -> Result<()> {
    let root = server::workspace_root();
    let target_dir = server::target_dir(&root)?;
    let dciodvfy = prerequisites::ensure_debian_program("dciodvfy", &["dicom3tools"])?;
    let python = prerequisites::python_venv(
        &target_dir.join("conformance-venv"),
        &root.join("tests/conformance/requirements.txt"),
    )?;
    let work = tempfile::Builder::new()
        .prefix("dicomweb-conformance-")
        .tempdir()
        .context("creating a temporary directory")?;
    let results = work.path().join("results.json");

    let mut started = None;
    let url = match &args.url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let binary = server::build(&root, &target_dir, args.release)?;
            let agent = ureq::Agent::new_with_config(
                ureq::config::Config::builder()
                    .http_status_as_error(false)
                    .build(),
            );
            let extra: Vec<String> = args
                .storage
                .iter()
                .flat_map(|s| ["--storage".to_string(), s.clone()])
                .collect();
            let server = Server::start_with(
                &binary,
                &work.path().join("data"),
                &extra,
                &work.path().join("server.log"),
                &agent,
            )?;
            let url = server.base_url().to_string();
            started = Some(server);
            url
        }
    };
    eprintln!("xtask: checking {url} with dicomweb-client, requests, pydicom and dciodvfy");
    let status = Command::new(&python)
        .arg(root.join("tests/conformance/run_conformance.py"))
        .args(["--url", &url])
        .arg("--results")
        .arg(&results)
        .arg("--dciodvfy")
        .arg(&dciodvfy)
        .args(args.verbose.then_some("--verbose"))
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    let log_tail = started.as_ref().map(Server::log_tail).unwrap_or_default();
    if let Some(mut server) = started {
        server.stop()?;
    }
    if args.keep {
        let kept = work.keep();
        eprintln!(
            "xtask: kept the server's data and log in {}",
            kept.display()
        );
    }
    if !status.success() {
        bail!(
            "the conformance script stopped ({status}) before it could report; the server's log ends with:\n{log_tail}"
        );
    }
    let report = read_report(&results)?;
    let failures = print_table(&report);
    if failures > 0 {
        bail!("{failures} conformance check(s) failed");
    }
    Ok(())
}

fn read_report(path: &Path) -> Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Prints counts by section, then every check that did not pass; returns the number of failures.
fn print_table(report: &Report) -> usize {
    let mut sections: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for row in &report.results {
        let counts = sections.entry(&row.section).or_default();
        match row.status.as_str() {
            "pass" => counts[0] += 1,
            "not implemented" => counts[2] += 1,
            _ => counts[1] += 1,
        }
    }
    let width = sections.keys().map(|s| s.len()).max().unwrap_or(0).max(7);
    println!();
    println!(
        "{:<width$}  {:>5}  {:>5}  {:>15}",
        "Section", "pass", "fail", "not implemented"
    );
    println!("{}", "-".repeat(width + 31));
    let mut total = [0usize; 3];
    for (section, counts) in &sections {
        println!(
            "{section:<width$}  {:>5}  {:>5}  {:>15}",
            counts[0], counts[1], counts[2]
        );
        for (sum, n) in total.iter_mut().zip(counts) {
            *sum += n;
        }
    }
    println!("{}", "-".repeat(width + 31));
    println!(
        "{:<width$}  {:>5}  {:>5}  {:>15}",
        "Total", total[0], total[1], total[2]
    );
    println!(
        "({} checks; dciodvfy ran {} times)",
        report.results.len(),
        report.dciodvfy_runs
    );
    for (label, wanted) in [("Not implemented", "not implemented"), ("FAILED", "fail")] {
        let rows: Vec<&Row> = report
            .results
            .iter()
            .filter(|r| r.status == wanted)
            .collect();
        if rows.is_empty() {
            continue;
        }
        println!("\n{label}:");
        for row in rows {
            println!("- [{}] {}: {}", row.section, row.check, row.detail);
        }
    }
    println!();
    total[1]
}
