//! `dicomweb`: the server binary.

use actix_web::{App, HttpServer, middleware};
use clap::Parser;
use dicomweb_server::auth::{Authenticator, OidcVerifier};
use dicomweb_server::config::{Cli, Command, Settings};
use dicomweb_server::{AppState, check_storage, configure_app, cors, open_service, routes, tls};
use dicomweb_service::StudiesService;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
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
        Command::Routes => {
            // An error, not a panic, when the reader goes away (`dicomweb routes | head`).
            use std::io::Write;
            let text = serde_json::to_string_pretty(&dicomweb_server::route_list())?;
            writeln!(std::io::stdout().lock(), "{text}")?;
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

/// The authenticator the settings ask for; with an issuer, its discovery document and keys must be reachable.
async fn authenticator(settings: &Settings) -> anyhow::Result<Authenticator> {
    let Some(oidc) = &settings.auth else {
        if settings.bind.ip().is_loopback() {
            tracing::warn!(
                bind = %settings.bind,
                "authentication is off: serving loopback only, where every local caller may read, store and \
                 delete (configure --auth-issuer and --auth-audience to require bearer tokens)"
            );
        } else {
            tracing::warn!(
                bind = %settings.bind,
                "authentication is off and --allow-anonymous is set: everyone who can reach this address may \
                 read, store and delete"
            );
        }
        return Ok(Authenticator::Anonymous);
    };
    let verifier = OidcVerifier::discover(oidc.clone())
        .await
        .map_err(|e| anyhow::anyhow!("identity provider {}: {e}", oidc.issuer))?;
    verifier.spawn_scheduled_refresh();
    tracing::info!(
        issuer = %oidc.issuer,
        audiences = ?oidc.audiences,
        roles_claim = %oidc.roles_claim,
        "bearer tokens required on every route but /health"
    );
    Ok(Authenticator::Oidc(verifier))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Configuration mistakes first, before anything is opened.
    settings.check_exposure()?;
    let tls_config = settings.tls.as_ref().map(tls::server_config).transpose()?;
    let auth = Arc::new(authenticator(&settings).await?);
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
        auth,
    };
    let scheme = if tls_config.is_some() {
        "https"
    } else {
        "http"
    };
    if !settings.cors_origins.is_empty() {
        tracing::info!(origins = ?settings.cors_origins, "CORS allows these browser origins");
    }
    tracing::info!(
        bind = %settings.bind,
        storage = %settings.storage,
        data_dir = %settings.data_dir.display(),
        "dicomweb listening on {scheme}://{}/ (API also under /v1 and /v2)",
        settings.bind
    );
    let cors_origins = settings.cors_origins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(routes::default_headers())
            .wrap(middleware::Logger::new("%a \"%r\" %s %b %Dms").log_target("dicomweb::access"))
            .wrap(cors(&cors_origins))
            .configure(|cfg| configure_app(cfg, state.clone()))
    })
    .workers(settings.workers);
    let server = match tls_config {
        Some(config) => server.bind_rustls_0_23(settings.bind, config),
        None => server.bind(settings.bind),
    }
    .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind))?;
    server.run().await?;
    close(&service).await?;
    Ok(())
}
