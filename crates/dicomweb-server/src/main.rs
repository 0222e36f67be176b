//! `dicomweb`: the server binary.

use actix_web::{App, HttpServer, middleware};
use clap::Parser;
use dicomweb_server::config::{Cli, Command, Settings};
use dicomweb_server::{AppState, check_storage, configure_app, open_service, routes};
use dicomweb_service::StudiesService;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The cause chain on one line, for people; no backtrace (it says nothing to an operator).
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_env("DICOMWEB_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(Settings::resolve(&args)?).await,
        Command::Reindex(args) => reindex(Settings::resolve(&args)?).await,
        Command::Check(args) => {
            let settings = Settings::resolve(&args)?;
            check_storage(&settings).await?;
            println!("storage {}: reachable and writable", settings.storage);
            Ok(())
        }
    }
}

/// Rebuilds the catalogue from storage, logging progress.
async fn rebuild(service: &StudiesService) -> anyhow::Result<()> {
    let started = Instant::now();
    let totals = service
        .rebuild_catalogue(Duration::from_secs(2), |p| {
            tracing::info!(
                seen = p.seen,
                added = p.added,
                already_catalogued = p.already_catalogued,
                unreadable = p.unreadable,
                "rebuilding the catalogue from storage"
            );
        })
        .await
        .map_err(|e| anyhow::anyhow!("rebuilding the catalogue from storage failed: {e}"))?;
    tracing::info!(
        added = totals.added,
        unreadable = totals.unreadable,
        seconds = started.elapsed().as_secs_f64(),
        "catalogue rebuilt from storage"
    );
    Ok(())
}

/// Flushes and closes the index (pending commits complete first).
async fn close(service: &StudiesService) -> anyhow::Result<()> {
    service
        .index()
        .close()
        .await
        .map_err(|e| anyhow::anyhow!("closing the index: {e}"))
}

/// `dicomweb reindex`: the same rebuild, with a progress bar on a terminal.
async fn reindex(settings: Settings) -> anyhow::Result<()> {
    let service = open_service(&settings)?;
    let total = service
        .stored_instance_count()
        .await
        .map_err(|e| anyhow::anyhow!("listing {} failed: {e}", settings.storage))?;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} instances ({per_sec}, {eta} left) {msg}",
        )
        .map_err(|e| anyhow::anyhow!("progress bar template: {e}"))?
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let totals = service
        .rebuild_catalogue(Duration::from_millis(200), |p| {
            bar.set_position(p.seen);
            bar.set_message(format!("{} added, {} unreadable", p.added, p.unreadable));
        })
        .await
        .map_err(|e| anyhow::anyhow!("rebuilding the catalogue from storage failed: {e}"))?;
    bar.finish();
    tracing::info!(
        seen = totals.seen,
        added = totals.added,
        already_catalogued = totals.already_catalogued,
        unreadable = totals.unreadable,
        seconds = started.elapsed().as_secs_f64(),
        "reindex finished"
    );
    close(&service).await?;
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Fail at start, with the cause, rather than at the first store.
    check_storage(&settings).await?;
    let service = open_service(&settings)?;
    // A new or lost index in front of existing storage: rebuild before serving, so that no client ever sees a
    // partial catalogue.
    if service.catalogue_is_empty()? && service.storage_has_instances().await? {
        tracing::warn!(storage = %settings.storage, "the index is empty but storage holds instances");
        rebuild(&service).await?;
    }
    let state = AppState {
        service: service.clone(),
    };
    tracing::info!(
        bind = %settings.bind,
        storage = %settings.storage,
        data_dir = %settings.data_dir.display(),
        "dicomweb listening on http://{}/ (API also under /v1 and /v2)",
        settings.bind
    );
    HttpServer::new(move || {
        App::new()
            .wrap(routes::default_headers())
            .wrap(middleware::Logger::new("%a \"%r\" %s %b %Dms").log_target("dicomweb::access"))
            .configure(|cfg| configure_app(cfg, state.clone()))
    })
    .workers(settings.workers)
    .bind(settings.bind)
    .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind))?
    .run()
    .await?;
    close(&service).await?;
    Ok(())
}
