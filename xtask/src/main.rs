//! `cargo xtask`: project automation that is not part of the shipped crates.
//!
//! One subcommand per task. Performance goals are checked here, by commands that measure and report, never by timed
//! unit tests. `bench` (criterion and a comparison with Orthanc) and `conformance` come with their issues; each is
//! a new variant of [`Command`] and a module of its own.

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::BenchStowLarge(args) => bench_stow_large::run(&args),
    }
}
