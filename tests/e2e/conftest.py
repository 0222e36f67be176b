"""Fixtures that start the real `dicomweb` binary on 127.0.0.1 with a fresh data directory."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from oidc_issuer import Issuer

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running dicomweb process; `restart` and `kill` keep its data directory."""

    def __init__(self, data_dir: Path, extra_args=(), extra_env=None, scheme="http", verify=True):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.extra_env = dict(extra_env or {})
        self.port = free_port()
        self.root = f"{scheme}://127.0.0.1:{self.port}"
        # For https: the CA bundle (here the server's self-signed certificate) that requests verifies against.
        self.verify = verify
        self.process = None
        self.log = open(data_dir.parent / "server.log", "ab")
        # DICOMWEB_E2E_STORAGE (e.g. s3://bucket/e2e, set by tests/emulators/run-cloud-tests.sh) puts the blobs
        # in that store, under a fresh prefix per server so that servers never see each other's data; a
        # restarted server keeps its prefix. Unset: the server's default, blobs under the data directory.
        base = os.environ.get("DICOMWEB_E2E_STORAGE", "").rstrip("/")
        self.storage = f"{base}/{uuid.uuid4().hex}" if base else None

    def start(self, wait_until_healthy=True):
        """Starts the server; by default returns once /health answers (after recovery at start)."""
        binary = os.environ.get("DICOMWEB_BIN") or shutil.which("dicomweb")
        if not binary:
            raise RuntimeError("set DICOMWEB_BIN to the dicomweb binary (tests/run.sh does)")
        env = dict(os.environ, DICOMWEB_LOG=os.environ.get("DICOMWEB_LOG", "info"), **self.extra_env)
        args = [binary, "serve", "--bind", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir), "--workers", "2"]
        if self.storage:
            args += ["--storage", self.storage]
        args += self.extra_args
        self.process = subprocess.Popen(
            args,
            stdout=self.log,
            stderr=self.log,
            env=env,
        )
        if not wait_until_healthy:
            return self
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dicomweb exited with {self.process.returncode}; see {self.log.name}")
            try:
                if requests.get(self.root + "/health", timeout=1, verify=self.verify).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("dicomweb did not become healthy within 30 s")

    def kill(self):
        """SIGKILL: no chance to flush or clean up, as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def make_server():
    """Factory of servers, each with its own data directory; all stopped at the end of the test."""
    servers = []
    temp = tempfile.mkdtemp(prefix="dicomweb-e2e-")

    def factory(extra_args=(), extra_env=None, **options) -> Server:
        data_dir = Path(temp) / f"server{len(servers)}" / "data"
        data_dir.mkdir(parents=True)
        server = Server(data_dir, extra_args, extra_env, **options)
        servers.append(server)
        return server.start()

    yield factory
    for server in servers:
        server.stop()
        server.log.close()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture
def issuer():
    """A real OpenID Connect issuer on 127.0.0.1 (tests/e2e/oidc_issuer.py)."""
    issuer = Issuer().start()
    yield issuer
    issuer.stop()


@pytest.fixture
def make_auth_server(make_server, issuer):
    """Factory of servers that require bearer tokens from `issuer` for audience `dicomweb`."""

    def factory(extra_args=(), **options) -> Server:
        args = ["--auth-issuer", issuer.url, "--auth-audience", "dicomweb", *extra_args]
        return make_server(args, **options)

    return factory


@pytest.fixture(params=["", "/v1", "/v2"], ids=["root", "v1", "v2"])
def prefix(request):
    return request.param
