//! Configuration: command-line flags, then environment variables (`DICOMWEB_*`), then a TOML file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// The `dicomweb` command line.
#[derive(Debug, Parser)]
#[command(
    name = "dicomweb",
    version,
    about = "A DICOMweb server: STOW-RS, WADO-RS, QIDO-RS, delete and change feed"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the DICOMweb API.
    Serve(ServeArgs),
    /// Catalogue every instance in storage that the index lacks (after losing or replacing the index directory),
    /// then exit. The server does this by itself on start when its index is empty and storage is not. Stop the
    /// server first: the index admits one process at a time.
    Reindex(ServeArgs),
    /// Verify that the storage backend is reachable and writable (writes, reads back and deletes a probe), then
    /// exit: 0 when it is, 1 with the URL and the cause when it is not.
    Check(ServeArgs),
}

/// Flags of `dicomweb serve`; each also reads an environment variable.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "DICOMWEB_BIND")]
    pub bind: Option<SocketAddr>,
    /// Directory for the index and temporary files [default: ./data].
    #[arg(long, env = "DICOMWEB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where DICOM files are stored: a path, file:///dir or memory:// [default: <data-dir>/blobs].
    #[arg(long, env = "DICOMWEB_STORAGE")]
    pub storage: Option<String>,
    /// A TOML file with the same settings (bind, data_dir, storage, workers).
    #[arg(long, env = "DICOMWEB_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP worker threads [default: number of cores].
    #[arg(long, env = "DICOMWEB_WORKERS")]
    pub workers: Option<usize>,
    /// How long a storage operation is retried (with backoff) after transient failures before the request
    /// fails with 503, in seconds [default: 120].
    #[arg(long, env = "DICOMWEB_STORAGE_RETRY_TIMEOUT")]
    pub storage_retry_timeout: Option<u64>,
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub storage: Option<String>,
    pub workers: Option<usize>,
    pub storage_retry_timeout: Option<u64>,
}

/// Settings after merging every source.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub storage: String,
    pub workers: usize,
    /// Retry deadline of storage operations.
    pub storage_retry_timeout: std::time::Duration,
}

impl Settings {
    /// Merges flags/environment (already combined by clap) over the TOML file over defaults.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileSettings::default(),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let storage = args
            .storage
            .clone()
            .or(file.storage)
            .unwrap_or_else(|| data_dir.join("blobs").to_string_lossy().into_owned());
        Ok(Settings {
            bind: args
                .bind
                .or(file.bind)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir,
            storage,
            storage_retry_timeout: std::time::Duration::from_secs(
                args.storage_retry_timeout
                    .or(file.storage_retry_timeout)
                    .unwrap_or(120),
            ),
            workers: args.workers.or(file.workers).unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            }),
        })
    }
}

fn load_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!("cannot read the configuration file {}: {e}", path.display())
    })?;
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid configuration file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_local_data() {
        let s = Settings::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.storage, "./data/blobs");
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dicomweb.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\nstorage = \"memory://\"\ndata_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            storage: Some("/srv/dicom".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:9000");
        assert_eq!(s.storage, "/srv/dicom");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dicomweb.toml");
        std::fs::write(&path, "bnid = \"127.0.0.1:9000\"\n").unwrap();
        let err = Settings::resolve(&ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("bnid"), "{err}");
    }
}
