#!/usr/bin/env bash
# Runs every test of the project, installing what the tests need (cmake from Debian if it is missing, a Python
# virtual environment under the cargo target directory). Usage: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET_DIR

step() { printf '\n==> %s\n' "$*"; }

step "build prerequisites (cmake, to build CharLS, the JPEG-LS codec)"
if ! command -v cmake >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then AS_ROOT=(); else AS_ROOT=(sudo -n); fi
  apt_install() { "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; }
  apt_install cmake || { "${AS_ROOT[@]}" apt-get update -q && apt_install cmake; }
fi

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "dependency policy (cargo deny: licences, bans, sources)"
if ! command -v cargo-deny >/dev/null 2>&1; then
  cargo install cargo-deny --locked --version 0.20.2
fi
# Advisories are not checked here: their database is fetched from GitHub, which this project's machines cannot
# reach (only package registries). Run `cargo deny check advisories` where GitHub is reachable.
cargo deny check licenses bans sources

step "Rust tests"
cargo test --workspace --locked

step "build the server"
cargo build --locked --bin dicomweb
export DICOMWEB_BIN=$TARGET_DIR/debug/dicomweb

step "Python environment for the end-to-end tests"
VENV=$TARGET_DIR/e2e-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# Reinstall only when the requirements change.
REQ_STAMP=$VENV/.requirements.sha256
REQ_SUM=$(sha256sum tests/e2e/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$REQ_STAMP" 2>/dev/null)" != "$REQ_SUM" ]; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
  echo "$REQ_SUM" > "$REQ_STAMP"
fi

step "end-to-end tests (real server on 127.0.0.1)"
"$VENV/bin/python" -m pytest tests/e2e -q -p no:cacheprovider "$@"

step "conformance: independent clients (dicomweb-client, pydicom, dciodvfy) against the local backend"
# Installs its own prerequisites: a virtual environment under the cargo target directory, dicom3tools from Debian.
cargo run --locked --quiet --package xtask -- conformance

step "S3 and Azure Blob (moto, Azurite on 127.0.0.1)"
bash tests/emulators/run-cloud-tests.sh
