//! `cargo xtask`: project automation that is not part of the shipped crates.
//!
//! One subcommand per task, each a variant of [`Command`] and a module of its own. Performance goals are checked
//! here, by commands that measure and report, never by timed unit tests; conformance is judged by independent
//! clients (`conformance`).

mod bench;
mod bench_codecs;
mod bench_qido;
mod bench_stow_large;
mod conformance;
mod machine;
mod prerequisites;
mod report;
mod rss;
mod server;
mod synthetic;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Project automation: conformance checks and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every DICOMweb transaction with independent clients (dicomweb-client, pydicom, requests) and dciodvfy
    /// against a started server (or --url); prints results by PS3.18 section and fails on any failure.
    Conformance(conformance::Args),
    /// Store a huge synthetic instance in a release build of the server and report the server's peak memory
    /// (VmHWM) during the store and the retrieve; writes its section of docs/benchmarks.md.
    BenchStowLarge(bench_stow_large::Args),
    /// Run the same client workload against a release build of this server and against Orthanc with its DICOMweb
    /// plugin (installed from Debian when missing), check every response, and write both servers' figures and
    /// their ratios to docs/benchmarks.md.
    Bench(bench::Args),
    /// Catalogue a synthetic million instances and report single-client QIDO-RS study search latency (p50, p99),
    /// the index size on disk and the ingest rate; runs from a release build of xtask (it builds and re-executes
    /// itself); writes its section of docs/benchmarks.md.
    BenchQido(bench_qido::Args),
    /// Decoded frames, rendered images and series thumbnails (cold and warm) against Orthanc; writes its section
    /// of docs/benchmarks.md.
    BenchImages(bench::images::Args),
    /// Each pixel codec (decode and encode of one frame) against the C library it wraps, through criterion;
    /// writes the ratios to docs/benchmarks.md.
    BenchCodecs(bench_codecs::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Conformance(args) => conformance::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::BenchStowLarge(args) => bench_stow_large::run(&args),
        Command::BenchQido(args) => bench_qido::run(&args),
        Command::BenchImages(args) => bench::images::run(&args),
        Command::BenchCodecs(args) => bench_codecs::run(&args),
    }
}
