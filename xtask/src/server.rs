//! Building, starting and stopping the `dicomweb` server for a benchmark.

use anyhow::{Context, Result, bail, ensure};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (the parent of this crate).
///
/// `cargo run` sets `CARGO_MANIFEST_DIR` for the program too; that one is preferred over the path baked in at
/// compile time, because a target directory shared by several clones may hold an xtask built in another clone.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the current directory, as cargo reads it) or
/// `<workspace>/target`.
pub fn target_dir(root: &Path) -> Result<PathBuf> {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            std::path::absolute(&dir).with_context(|| format!("resolving CARGO_TARGET_DIR {dir:?}"))
        }
        _ => Ok(root.join("target")),
    }
}

/// `cargo build --release --bin dicomweb`; returns the binary.
pub fn build_release(root: &Path, target_dir: &Path) -> Result<PathBuf> {
    build(root, target_dir, true)
}

/// `cargo build [--release] --bin dicomweb`; returns the binary.
pub fn build(root: &Path, target_dir: &Path, release: bool) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args = vec!["build", "--bin", "dicomweb"];
    if release {
        args.push("--release");
    }
    let status = Command::new(&cargo)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir)
        .args(&args)
        .status()
        .with_context(|| format!("running {cargo:?} {}", args.join(" ")))?;
    ensure!(status.success(), "building the server failed ({status})");
    let binary = target_dir
        .join(if release { "release" } else { "debug" })
        .join("dicomweb");
    ensure!(
        binary.is_file(),
        "the build succeeded but {} is missing",
        binary.display()
    );
    Ok(binary)
}

/// A running server; stopped (gracefully if it can) by [`Server::stop`] or on drop.
pub struct Server {
    child: Option<Child>,
    pid: u32,
    base_url: String,
    log: PathBuf,
}

impl Server {
    /// Starts `binary serve` on a free port of 127.0.0.1 with `data_dir`, logging to `log`, and waits for
    /// `GET /health` to answer 200.
    pub fn start(
        binary: &Path,
        data_dir: &Path,
        log: &Path,
        agent: &ureq::Agent,
    ) -> Result<Server> {
        Server::start_with(binary, data_dir, &[], log, agent)
    }

    /// [`Server::start`] with more arguments for `serve` (`--storage URL`, say).
    pub fn start_with(
        binary: &Path,
        data_dir: &Path,
        extra_args: &[String],
        log: &Path,
        agent: &ureq::Agent,
    ) -> Result<Server> {
        let port = free_port()?;
        let bind = format!("127.0.0.1:{port}");
        let log_file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let log_file_too = log_file
            .try_clone()
            .with_context(|| format!("duplicating the handle of {}", log.display()))?;
        let child = Command::new(binary)
            .arg("serve")
            .arg("--bind")
            .arg(&bind)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--workers", "2"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_file_too)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Server {
            pid: child.id(),
            child: Some(child),
            base_url: format!("http://{bind}"),
            log: log.to_path_buf(),
        };
        server.wait_healthy(agent, Duration::from_secs(60))?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn wait_healthy(&mut self, agent: &ureq::Agent, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let url = format!("{}/health", self.base_url);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("waiting for the server")?
            {
                bail!(
                    "the server exited ({status}) before it was healthy; its log ({}):\n{}",
                    self.log.display(),
                    self.log_tail()
                );
            }
            let answer = agent
                .get(&url)
                .config()
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .call();
            if let Ok(response) = answer
                && response.status() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the server did not answer 200 on {url} within {timeout:?}; its log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then SIGKILL if the server has not exited within 15 s.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child
            .try_wait()
            .context("waiting for the server")?
            .is_some()
        {
            return Ok(());
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if child
                .try_wait()
                .context("waiting for the server")?
                .is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill().context("killing the server")?;
        child.wait().context("waiting for the killed server")?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(listener
        .local_addr()
        .context("reading the free port's address")?
        .port())
}
