//! `dicomweb`: the server binary.

use actix_web::{App, HttpServer, middleware};
use clap::Parser;
use dicomweb_server::config::{Cli, Command, Settings};
use dicomweb_server::{AppState, configure_app, open_service, routes};
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("DICOMWEB_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(Settings::resolve(&args)?).await,
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let service = open_service(&settings)?;
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
    service
        .index()
        .close()
        .await
        .map_err(|e| anyhow::anyhow!("closing the index: {e}"))?;
    Ok(())
}
