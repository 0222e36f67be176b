//! What the commands need from outside Rust, installed when missing: Debian packages (through apt-get, as root or
//! with password-less sudo) and Python virtual environments under the cargo target directory.

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `program` on `PATH` or in the system directories that are not on every user's `PATH` (Orthanc is in
/// `/usr/sbin`).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `program`, installing the Debian `packages` that provide it if it is missing.
pub fn ensure_debian_program(program: &str, packages: &[&str]) -> Result<PathBuf> {
    if let Some(found) = find_program(program) {
        return Ok(found);
    }
    eprintln!(
        "xtask: {program} is missing; installing {} with apt-get",
        packages.join(" ")
    );
    ensure!(
        find_program("apt-get").is_some(),
        "{program} is missing and this machine has no apt-get: install {} (Debian package names) by hand",
        packages.join(" ")
    );
    let as_root = is_root();
    ensure!(
        as_root || find_program("sudo").is_some(),
        "{program} is missing: installing {} needs root (run as root, or with password-less sudo)",
        packages.join(" ")
    );
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend_from_slice(packages);
    if !apt_get(as_root, &install)? {
        // The package lists may be absent (a fresh container) or stale.
        eprintln!("xtask: apt-get install failed; running apt-get update and trying again");
        apt_get(as_root, &["update"])?;
        if !apt_get(as_root, &install)? {
            bail!(
                "apt-get install {} failed (see its output above); {program} is needed",
                packages.join(" ")
            );
        }
    }
    find_program(program).with_context(|| {
        format!(
            "apt-get installed {} but {program} is still not found",
            packages.join(" ")
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Runs apt-get (through `sudo -n` unless root) without prompts; true if it succeeded.
fn apt_get(as_root: bool, args: &[&str]) -> Result<bool> {
    let mut command = if as_root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        sudo
    };
    let status = command
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .with_context(|| format!("running apt-get {}", args.join(" ")))?;
    Ok(status.success())
}

/// A Python virtual environment in `dir` with `requirements` installed (reinstalled when the file changes);
/// returns its interpreter.
pub fn python_venv(dir: &Path, requirements: &Path) -> Result<PathBuf> {
    let python = dir.join("bin").join("python");
    if !python.is_file() {
        let system_python = find_program("python3")
            .context("python3 is needed (with its venv module) for the independent clients")?;
        eprintln!(
            "xtask: creating a Python virtual environment in {}",
            dir.display()
        );
        let status = Command::new(&system_python)
            .args(["-m", "venv"])
            .arg(dir)
            .status()
            .with_context(|| format!("running {} -m venv", system_python.display()))?;
        ensure!(
            status.success(),
            "python3 -m venv {} failed ({status}); on Debian install python3-venv",
            dir.display()
        );
    }
    let wanted = std::fs::read(requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let digest = hex::encode(Sha256::digest(&wanted));
    let stamp = dir.join(".requirements.sha256");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(digest.as_str()) {
        eprintln!(
            "xtask: installing {} into {}",
            requirements.display(),
            dir.display()
        );
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(requirements)
            .status()
            .with_context(|| format!("running {} -m pip install", python.display()))?;
        ensure!(
            status.success(),
            "pip install -r {} failed ({status}); PyPI must be reachable",
            requirements.display()
        );
        std::fs::write(&stamp, digest).with_context(|| format!("writing {}", stamp.display()))?;
    }
    Ok(python)
}
