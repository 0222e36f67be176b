//! `cargo xtask`: project automation that is not part of the shipped crates.
//!
//! One subcommand per task. Performance goals are checked here, by commands that measure and report, never by timed
//! unit tests. `bench` (criterion and a comparison with Orthanc) and `conformance` come with their issues; each is
//! a new variant of [`Command`] and a module of its own.

mod bench_qido;
mod bench_stow_large;
mod machine;
mod report;
mod rss;
mod server;
mod synthetic;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Project automation: benchmarks (and, with their issues, conformance)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store a huge synthetic instance in a release build of the server and report the server's peak memory
    /// (VmHWM) during the store and the retrieve; writes its section of docs/benchmarks.md.
    BenchStowLarge(bench_stow_large::Args),
    /// Catalogue a synthetic million instances and report single-client QIDO-RS study search latency (p50, p99),
    /// the index size on disk and the ingest rate; runs from a release build of xtask (it builds and re-executes
    /// itself); writes its section of docs/benchmarks.md.
    BenchQido(bench_qido::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::BenchStowLarge(args) => bench_stow_large::run(&args),
        Command::BenchQido(args) => bench_qido::run(&args),
    }
}
