//! `dicomweb`: the server binary.

use actix_web::{App, HttpServer, middleware};
use clap::Parser;
use dicomweb_server::auth::{Authenticator, OidcVerifier};
use dicomweb_server::config::{Cli, Command, Settings};
use dicomweb_server::origin::OriginPolicy;
use dicomweb_server::{AppState, check_storage, configure_app, cors, open_service, routes, tls};
use dicomweb_service::StudiesService;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: a store allocates and frees buffers of a few KiB on several threads,
/// where glibc's arenas spent about a tenth of the server's CPU (profiled under 8 storing clients).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    keep_library_errors_without_backtraces();
    match actix_web::rt::System::new().block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The cause chain on one line, for people; no backtrace (it says nothing to an operator).
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// With `RUST_BACKTRACE=1` (common in container images) the standard library captures a backtrace for every
/// error a library builds that can hold one, unless `RUST_LIB_BACKTRACE` says otherwise. dicom-rs builds such an
/// error at the end of every data set it parses, and elsewhere on paths a store takes: profiled, a capture was 7%
/// of an ingest thread's CPU. Nothing this server reports shows those backtraces, so unless the operator set
/// `RUST_LIB_BACKTRACE`, they are off; panics keep theirs (`RUST_BACKTRACE` alone decides those).
fn keep_library_errors_without_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first thing in `main`, before the runtime or anything else starts a thread, so no other
        // thread can read the environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

async fn run() -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // Log lines (an access line per request among them) are written by a thread of their own, in batches
    // (`log_writer`); the guard writes what is left when `run` returns.
    let (log_writer, _log_guard) = dicomweb_server::log_writer::BatchedStderr::start()?;
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_env("DICOMWEB_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        // actix logs every request it cannot parse at ERROR: a client's mistake, and a way to flood the log.
        .with(dicomweb_server::client_errors::ClientErrorsAsWarnings::default())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(log_writer)
                .with_ansi(std::io::stderr().is_terminal()),
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

/// Removes what a crash left behind before serving, and says what it did.
async fn recover(service: &StudiesService) -> anyhow::Result<()> {
    let report = service
        .recover()
        .await
        .map_err(|e| anyhow::anyhow!("recovery at start failed: {e}"))?;
    tracing::info!(
        spool_files_removed = report.spool_files_removed,
        pending_deletions_completed = report.pending_deletions_completed,
        pending_deletions_left = report.pending_deletions_left,
        copies_intact = report.copies_intact,
        copies_rewritten = report.copies_rewritten,
        "recovery at start"
    );
    Ok(())
}

/// How often storage is swept for leftovers of interrupted operations, and how old a leftover must be.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
const LEFTOVER_AGE: Duration = Duration::from_secs(6 * 3600);

/// Sweeps storage now (for leftovers older than `first_older_than`) and then every [`SWEEP_INTERVAL`].
fn spawn_storage_sweeps(service: Arc<StudiesService>, first_older_than: Duration) {
    actix_web::rt::spawn(async move {
        let mut older_than = first_older_than;
        loop {
            match service.sweep_storage(older_than).await {
                Ok(report) => tracing::info!(
                    files_seen = report.files_seen,
                    orphans_removed = report.orphans_removed,
                    stale_uploads_removed = report.stale_uploads_removed,
                    pending_deletions_completed = report.pending_deletions_completed,
                    "storage swept for leftovers of interrupted operations"
                ),
                Err(error) => tracing::warn!(%error, "sweeping storage failed; retrying later"),
            }
            actix_web::rt::time::sleep(SWEEP_INTERVAL).await;
            older_than = LEFTOVER_AGE;
        }
    });
}

/// Flushes and closes the index (pending commits complete first).
async fn close(service: &StudiesService) -> anyhow::Result<()> {
    service
        .flush_stores()
        .await
        .map_err(|e| anyhow::anyhow!("flushing stored files: {e}"))?;
    service
        .index()
        .close()
        .await
        .map_err(|e| anyhow::anyhow!("closing the index: {e}"))
}

/// `dicomweb reindex` (server stopped): rebuilds the search index from the catalogue of record, with a progress
/// bar on a terminal; if the catalogue is empty, first rebuilds it from storage. Nothing that the catalogue does
/// not hold (a deleted instance, a store that was never acknowledged) comes back.
async fn reindex(settings: Settings) -> anyhow::Result<()> {
    let index_dir = settings.data_dir.join("index");
    if index_dir.exists() {
        std::fs::remove_dir_all(&index_dir).map_err(|e| {
            anyhow::anyhow!("cannot remove the old index {}: {e}", index_dir.display())
        })?;
    }
    let service = open_service(&settings)?;
    recover(&service).await?;
    if service.catalogue_is_empty().await? && service.storage_has_instances().await? {
        tracing::warn!(storage = %settings.storage, "the catalogue is empty: rebuilding it from storage first");
        rebuild(&service).await?;
    }
    let total = service.catalogue().last_sequence();
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} catalogue changes indexed ({per_sec}, {eta} left)",
        )
        .map_err(|e| anyhow::anyhow!("progress bar template: {e}"))?
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let sync = service.sync_search_index();
    tokio::pin!(sync);
    let applied = loop {
        tokio::select! {
            result = &mut sync => break result.map_err(|e| anyhow::anyhow!("indexing the catalogue failed: {e}"))?,
            _ = actix_web::rt::time::sleep(Duration::from_millis(200)) => bar.set_position(service.index().applied_sequence()),
        }
    };
    bar.set_position(applied);
    bar.finish();
    tracing::info!(
        changes = applied,
        instances = service.index().instance_count().unwrap_or_default(),
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
    let started = Instant::now();
    let service = open_service(&settings)?;
    recover(&service).await?;
    // A lost catalogue (or an archive written before it existed) in front of existing storage: rebuild before
    // serving, so that no client ever sees a partial archive.
    if service.catalogue_is_empty().await? && service.storage_has_instances().await? {
        tracing::warn!(storage = %settings.storage, "the catalogue is empty but storage holds instances");
        rebuild(&service).await?;
    } else {
        // Leftovers of stores that a crash interrupted: everything older than this start is finished.
        spawn_storage_sweeps(service.clone(), started.elapsed());
    }
    let indexing = service.clone();
    actix_web::rt::spawn(async move {
        match indexing.sync_search_index().await {
            Ok(sequence) => tracing::info!(sequence, "search index up to date with the catalogue"),
            Err(error) => tracing::error!(%error, "bringing the search index up to date failed"),
        }
    });
    let origin = OriginPolicy::new(
        settings.public_url.clone(),
        settings.trusted_proxies.clone(),
        tls_config.is_some(),
        settings.bind,
    );
    match (&settings.public_url, settings.trusted_proxies.is_empty()) {
        (Some(url), true) => tracing::info!(
            public_url = url.as_str(),
            "URLs in responses start with the public URL"
        ),
        (Some(url), false) => tracing::warn!(
            public_url = url.as_str(),
            "both a public URL and trusted proxies are configured: URLs in responses start with the public URL, \
             forwarding headers are ignored"
        ),
        (None, false) => tracing::info!(
            trusted_proxies = ?settings.trusted_proxies,
            "URLs in responses follow the forwarding headers of these proxies"
        ),
        (None, true) => {}
    }
    let state = AppState {
        service: service.clone(),
        auth,
        origin: Arc::new(origin),
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
    let body_limits = settings.body;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(routes::default_headers())
            .wrap(middleware::Logger::new("%a \"%r\" %s %b %Dms").log_target("dicomweb::access"))
            .wrap(cors(&cors_origins))
            .app_data(actix_web::web::Data::new(body_limits))
            .configure(|cfg| configure_app(cfg, state.clone()))
    })
    .workers(settings.workers)
    // Small writes (multipart boundaries, part headers) must not wait for the client's delayed ACK (Nagle); set
    // on every accepted socket, plain and TLS.
    .tcp_nodelay(true);
    let server = match tls_config {
        Some(config) => server.bind_rustls_0_23(settings.bind, config),
        None => server.bind(settings.bind),
    }
    .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind))?;
    server.run().await?;
    close(&service).await?;
    Ok(())
}
