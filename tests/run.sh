#!/usr/bin/env bash
# Runs every test of the project, installing what the tests need (cmake and nasm from Debian if missing, a
# Python virtual environment under the cargo target directory). Usage: bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET_DIR

step() { printf '\n==> %s\n' "$*"; }
# Debian packages the tests need, as root or with password-less sudo; the package lists are refreshed only if an
# install fails.
apt_install() {
  local as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo -n)
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" \
    || { "${as_root[@]}" apt-get update -q && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; }
}

step "build prerequisites (cmake and nasm, to build CharLS, OpenJPH and libjpeg-turbo)"
missing=()
for tool in cmake nasm; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
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

step "browser end-to-end prerequisites (Debian's Chromium, puppeteer-core, OHIF 3.13.2's prebuilt dist/)"
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
fi
export CHROMIUM
CHROMIUM=$(command -v chromium)
BROWSER_TOOLS=$TARGET_DIR/ohif-e2e
mkdir -p "$BROWSER_TOOLS"
# puppeteer-core as locked in tests/ohif/package-lock.json, reinstalled only when the lock changes.
NODE_STAMP=$BROWSER_TOOLS/.package-lock.sha256
NODE_SUM=$(sha256sum tests/ohif/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$NODE_STAMP" 2>/dev/null)" != "$NODE_SUM" ]; then
  cp tests/ohif/package.json tests/ohif/package-lock.json "$BROWSER_TOOLS/"
  (cd "$BROWSER_TOOLS" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$NODE_SUM" > "$NODE_STAMP"
fi
export PUPPETEER_CORE=$BROWSER_TOOLS/node_modules/puppeteer-core
# OHIF's prebuilt viewer: `npm pack` of the published package (`npm i @ohif/app@3.13.2` fails on a missing
# dependency; the package's dist/ is the built application).
OHIF_VERSION=3.13.2
export OHIF_DIST=$BROWSER_TOOLS/ohif-$OHIF_VERSION/package/dist
if [ ! -f "$OHIF_DIST/index.html" ]; then
  rm -rf "$BROWSER_TOOLS/ohif-$OHIF_VERSION" && mkdir -p "$BROWSER_TOOLS/ohif-$OHIF_VERSION"
  (cd "$BROWSER_TOOLS/ohif-$OHIF_VERSION" && npm pack --silent "@ohif/app@$OHIF_VERSION" >/dev/null && tar xzf ohif-app-*.tgz && rm ohif-app-*.tgz)
fi

step "end-to-end tests (real server on 127.0.0.1; OHIF in Chromium)"
"$VENV/bin/python" -m pytest tests/e2e -q -p no:cacheprovider "$@"

step "conformance: independent clients (dicomweb-client, pydicom, dciodvfy) against the local backend"
# Installs its own prerequisites: a virtual environment under the cargo target directory, dicom3tools from Debian.
cargo run --locked --quiet --package xtask -- conformance

step "S3 and Azure Blob (moto, Azurite on 127.0.0.1)"
bash tests/emulators/run-cloud-tests.sh
