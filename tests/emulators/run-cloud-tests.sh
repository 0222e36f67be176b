#!/usr/bin/env bash
# Runs the storage tests and the end-to-end acceptance and crash tests on Amazon S3 and Azure Blob Storage,
# against real emulators on 127.0.0.1: moto's S3 server and Azurite.
#
# Usage (from the repository root, after the Rust tests, the server build and the e2e venv of tests/run.sh):
#   bash tests/emulators/run-cloud-tests.sh
# Environment: CARGO_TARGET_DIR (required), DICOMWEB_BIN (default: $CARGO_TARGET_DIR/debug/dicomweb).
#
# Installs (once, cached at pinned versions): moto[server] into $CARGO_TARGET_DIR/e2e-venv and Azurite into
# $CARGO_TARGET_DIR/node_modules (needs Node.js 20 and npm). Never skips: an emulator that does not start, a
# missing tool or a failing test makes the script exit non-zero, with the emulators' log tails.
set -euo pipefail
cd "$(dirname "$0")/../.."

MOTO_VERSION=5.2.5
AZURITE_VERSION=3.35.0

fail() { echo "run-cloud-tests: $*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

TARGET_DIR=${CARGO_TARGET_DIR:?CARGO_TARGET_DIR must be set (tests/run.sh exports it)}
export CARGO_TARGET_DIR=$TARGET_DIR
VENV=$TARGET_DIR/e2e-venv
DICOMWEB_BIN=${DICOMWEB_BIN:-$TARGET_DIR/debug/dicomweb}
export DICOMWEB_BIN
[ -x "$VENV/bin/python" ] || fail "no e2e venv at $VENV: run tests/run.sh first"
[ -x "$DICOMWEB_BIN" ] || fail "no server binary at $DICOMWEB_BIN: cargo build --bin dicomweb first"
command -v node >/dev/null || fail "node (Node.js 20) is needed for Azurite"
command -v npm >/dev/null || fail "npm is needed to install Azurite"

step "emulators: moto[server] $MOTO_VERSION and Azurite $AZURITE_VERSION"
installed_moto=$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('moto'))" 2>/dev/null || true)
if [ "$installed_moto" != "$MOTO_VERSION" ] || [ ! -x "$VENV/bin/moto_server" ]; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
AZURITE_PACKAGE=$TARGET_DIR/node_modules/azurite/package.json
installed_azurite=$(node -p "require('$AZURITE_PACKAGE').version" 2>/dev/null || true)
if [ "$installed_azurite" != "$AZURITE_VERSION" ]; then
  npm install --prefix "$TARGET_DIR" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    "azurite@$AZURITE_VERSION"
fi
AZURITE_BLOB=$TARGET_DIR/node_modules/.bin/azurite-blob
[ -x "$AZURITE_BLOB" ] || fail "Azurite did not install: no $AZURITE_BLOB"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dicomweb-cloud-XXXXXX")
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -f "$log" ] || continue
      echo "---- last lines of $(basename "$log") ----" >&2
      tail -n 30 "$log" >&2
    done
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

free_port() { "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits until something answers HTTP on the port (any status counts), failing if the process dies or 60 s pass.
wait_for_http() {
  local name=$1 pid=$2 url=$3
  local deadline=$((SECONDS + 60))
  until curl --silent --output /dev/null --max-time 2 "$url"; do
    kill -0 "$pid" 2>/dev/null || fail "$name exited before answering on $url"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name did not answer on $url within 60 s"
    sleep 0.2
  done
  echo "$name answers on $url"
}

S3_PORT=$(free_port)
AZURE_PORT=$(free_port)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
wait_for_http moto "${PIDS[0]}" "http://127.0.0.1:$S3_PORT/"
mkdir -p "$WORK/azurite"
"$AZURITE_BLOB" --blobHost 127.0.0.1 --blobPort "$AZURE_PORT" --location "$WORK/azurite" \
  --skipApiVersionCheck --loose --disableTelemetry >"$WORK/azurite.log" 2>&1 &
PIDS+=($!)
wait_for_http Azurite "${PIDS[1]}" "http://127.0.0.1:$AZURE_PORT/"

BUCKET=dicomweb
CONTAINER=dicomweb
EMULATOR_ARGS=("http://127.0.0.1:$S3_PORT" "$BUCKET" "http://127.0.0.1:$AZURE_PORT" "$CONTAINER")
"$VENV/bin/python" tests/emulators/emulators.py "${EMULATOR_ARGS[@]}"

# Only the emulators' configuration: cloud settings inherited from the caller must not leak in.
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(AWS|AZURE|AZURITE)_' || true)
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_ENDPOINT=http://127.0.0.1:$S3_PORT AWS_ALLOW_HTTP=true
export AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:$AZURE_PORT
RUN=run-$(date +%s)-$$
export DICOMWEB_TEST_S3_URL=s3://$BUCKET/$RUN DICOMWEB_TEST_AZURE_URL=az://$CONTAINER/$RUN

step "storage conformance on S3 (moto) and Azure Blob (Azurite)"
cargo test --locked -p dicomweb-storage --test cloud -- --ignored

for backend in s3 azure; do
  if [ "$backend" = s3 ]; then storage=s3://$BUCKET/$RUN/e2e; else storage=az://$CONTAINER/$RUN/e2e; fi
  # The acceptance story, then the durability tests that make sense on remote storage (named: a renamed test
  # fails here rather than silently not running).
  step "end-to-end acceptance and crash tests with --storage $storage"
  DICOMWEB_E2E_STORAGE=$storage "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/e2e/test_acceptance.py \
    tests/e2e/test_crash.py::test_kill_9_during_a_store_storm_loses_nothing_acknowledged \
    tests/e2e/test_crash.py::test_kill_9_while_the_search_index_commits_in_the_background_loses_nothing_acknowledged \
    tests/e2e/test_crash.py::test_kill_9_during_recovery_at_start_loses_nothing_acknowledged \
    tests/e2e/test_crash.py::test_a_server_with_a_lost_search_index_rebuilds_it_from_the_catalogue \
    tests/e2e/test_crash.py::test_a_server_that_lost_its_data_directory_rebuilds_the_catalogue_from_storage \
    tests/e2e/test_crash.py::test_reindex_command_rebuilds_the_search_index_from_the_catalogue \
    tests/e2e/test_storage_faults.py
  # The servers must really have written there, not elsewhere (the story deletes what it stored, so count the
  # writes in the emulator's access log rather than what is left).
  log=$WORK/moto.log; [ "$backend" = azure ] && log=$WORK/azurite.log
  writes=$(grep -c "\"PUT /[^ ]*/$RUN/e2e/" "$log" || true)
  [ "$writes" -gt 0 ] || fail "the end-to-end tests passed but wrote nothing under $storage"
  echo "the servers wrote $writes times under $storage"
done
