//! `cargo xtask bench-codecs`: each pixel codec of dicomweb-pixel against the C library it wraps, on the same
//! frames in the same run, through criterion (`crates/dicomweb-pixel/benches/codecs.rs`, which says what is
//! measured); the medians and their ratios go to docs/benchmarks.md.

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{machine, report, server};

const SECTION: &str = "Pixel codecs against their C libraries";
/// The bar: our decode or encode of a frame within this factor of the C library's own call.
const TARGET: f64 = 1.3;
const OURS: &str = "dicomweb-pixel";
const REFERENCE: &str = "C reference";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Do not write the results to docs/benchmarks.md.
    #[arg(long)]
    no_report: bool,
}

/// One criterion group's medians, in milliseconds.
struct Row {
    group: String,
    ours: f64,
    reference: Option<f64>,
}

pub fn run(args: &Args) -> Result<()> {
    let root = server::workspace_root();
    let target_dir = server::target_dir(&root)?;
    let criterion_dir = target_dir.join("criterion");
    // Stale results of a group no longer benchmarked must not be reported.
    let _ = std::fs::remove_dir_all(&criterion_dir);
    eprintln!("xtask: cargo bench -p dicomweb-pixel --bench codecs");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["bench", "-p", "dicomweb-pixel", "--bench", "codecs"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .context("running cargo bench")?;
    if !status.success() {
        bail!("cargo bench failed ({status})");
    }
    let rows = read_rows(&criterion_dir)?;
    if rows.is_empty() {
        bail!(
            "criterion wrote no results under {}",
            criterion_dir.display()
        );
    }
    let printed: Vec<(String, String)> = rows
        .iter()
        .map(|row| {
            let figure = match row.reference {
                Some(reference) => format!(
                    "{:.3} ms vs {reference:.3} ms ({:.2}x)",
                    row.ours,
                    row.ours / reference
                ),
                None => format!("{:.3} ms", row.ours),
            };
            (row.group.clone(), figure)
        })
        .collect();
    report::print_rows(&printed);
    if !args.no_report {
        let path = root.join("docs/benchmarks.md");
        report::update_section(&path, SECTION, &markdown(&rows))?;
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(())
}

/// Every `{group}/{function}/new` result criterion wrote, by group, in the benchmark's order of groups as far as
/// names allow (sorted).
fn read_rows(criterion_dir: &Path) -> Result<Vec<Row>> {
    let mut medians: Vec<(String, String, f64)> = Vec::new();
    for group in read_dir(criterion_dir)? {
        for function in read_dir(&group)? {
            let new = function.join("new");
            let Ok(identity) = std::fs::read_to_string(new.join("benchmark.json")) else {
                continue;
            };
            let identity: serde_json::Value = serde_json::from_str(&identity)
                .with_context(|| format!("reading {}", new.display()))?;
            let estimates: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(new.join("estimates.json"))
                    .with_context(|| format!("reading {}", new.display()))?,
            )?;
            let (Some(group_id), Some(function_id), Some(median_ns)) = (
                identity["group_id"].as_str(),
                identity["function_id"].as_str(),
                estimates["median"]["point_estimate"].as_f64(),
            ) else {
                bail!("unexpected criterion output in {}", new.display());
            };
            medians.push((group_id.into(), function_id.into(), median_ns / 1e6));
        }
    }
    medians.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rows: Vec<Row> = Vec::new();
    for (group, function, ms) in medians {
        let row = match rows.iter_mut().find(|r| r.group == group) {
            Some(row) => row,
            None => {
                rows.push(Row {
                    group: group.clone(),
                    ours: f64::NAN,
                    reference: None,
                });
                rows.last_mut().expect("just pushed")
            }
        };
        match function.as_str() {
            OURS => row.ours = ms,
            REFERENCE => row.reference = Some(ms),
            other => bail!("unexpected benchmark {group}/{other}"),
        }
    }
    Ok(rows)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "What one frame costs through dicomweb-pixel (from and to the native little-endian bytes a retrieve sends, \
         with every conversion and check on the way) against the C library it wraps called directly on the same \
         frame in the same run: libjpeg-turbo 3.1 through `turbojpeg-sys`'s raw TurboJPEG 3 calls, CharLS 2.4 \
         through `charls`, OpenJPEG 2.5 through `jpeg2k` (whose encoder writes files only: the reference encode \
         writes a temporary file), OpenJPH 0.31 (the HTJ2K reference, vendored by the `openjph` crate, which \
         dicomweb-pixel decodes and encodes HTJ2K with) through that crate's functions: its rows measure what \
         dicomweb-pixel adds. The frames: a 512 x 512 CT-like slice of 12 bits stored in 16, the same windowed \
         to 8 bits, a 512 x 512 RGB image. RLE has no C library linked to compare with. (Before OpenJPH was \
         vendored, HTJ2K was decoded through OpenJPEG at 2.70x OpenJPH's time, and openjph-core 0.1.0, the one \
         Rust HTJ2K encoder, was tried and withdrawn: OpenJPH and OpenJPEG reject some of the codestreams it \
         writes, frames 14, 58 and 67 of pydicom-data's `color3d_jpeg_baseline.dcm`, \"missing msbs are larger \
         or equal to Kmax\".)\n"
    );
    let _ = writeln!(
        out,
        "Method: `cargo xtask bench-codecs` runs `cargo bench -p dicomweb-pixel --bench codecs` (criterion, 20 \
         samples, release build, one thread) and reads back the medians. The target is {TARGET}x the C \
         library's time at most.\n"
    );
    let _ = writeln!(
        out,
        "| Frame | dicomweb-pixel (ms) | C reference (ms) | Ratio |\n| --- | ---: | ---: | ---: |"
    );
    let mut missed = Vec::new();
    let mut compared = 0;
    for row in rows {
        match row.reference {
            Some(reference) => {
                compared += 1;
                let ratio = row.ours / reference;
                if ratio > TARGET {
                    missed.push(format!("{} ({ratio:.2}x)", row.group));
                }
                let _ = writeln!(
                    out,
                    "| {} | {:.3} | {reference:.3} | {ratio:.2}x |",
                    row.group, row.ours
                );
            }
            None => {
                let _ = writeln!(out, "| {} | {:.3} | - | - |", row.group, row.ours);
            }
        }
    }
    let _ = writeln!(
        out,
        "\nResult: within {TARGET}x of the C library on {} of {compared} compared figures{}.\n",
        compared - missed.len(),
        if missed.is_empty() {
            String::new()
        } else {
            format!("; **not met**: {}", missed.join("; "))
        }
    );
    let _ = writeln!(
        out,
        "| | |\n| --- | --- |\n| Machine | {} |\n| Date | {} |\n| Command | cargo xtask bench-codecs |",
        machine::Machine::describe(),
        machine::now_utc()
    );
    out
}
