"""Remote storage failing under the server: a store answers 503 with a message, nothing half-stored becomes
visible, and the same store succeeds once storage is back.

Runs when DICOMWEB_E2E_STORAGE names remote storage (tests/emulators/run-cloud-tests.sh sets it, with the emulators'
endpoints): the server reaches the real emulator through a TCP proxy of this test that can cut the link at once or
after a number of bytes (in the middle of a multipart upload).
"""

import io
import os
import socket
import threading
import time
from urllib.parse import urlparse


import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from dicomweb_helpers import related_body, sample

STORAGE = os.environ.get("DICOMWEB_E2E_STORAGE", "")
pytestmark = pytest.mark.skipif(
    not STORAGE.startswith(("s3://", "az://")),
    reason="needs remote storage: run through tests/emulators/run-cloud-tests.sh",
)


class FaultProxy:
    """Forwards 127.0.0.1:port to the emulator; `cut()` drops every connection and refuses new ones until
    `restore()`; `cut_after(n)` cuts once n more bytes have gone upstream."""

    def __init__(self, upstream: str):
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sockets = set()
        self.is_cut = False
        self.budget = None
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                refused = self.is_cut
            if refused:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source, destination, counted):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if counted:
                    with self.lock:
                        if self.budget is not None:
                            self.budget -= len(data)
                            over = self.budget < 0
                        else:
                            over = False
                    if over:
                        self.cut()
                        break
                destination.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, destination):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        with self.lock:
            self.is_cut = True
            victims = list(self.sockets)
            self.sockets.clear()
        for s in victims:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def cut_after(self, budget: int):
        with self.lock:
            self.budget = budget

    def restore(self):
        with self.lock:
            self.is_cut = False
            self.budget = None

    def close(self):
        self.cut()
        self.listener.close()


@pytest.fixture
def proxied_server(make_server):
    if STORAGE.startswith("s3://"):
        proxy = FaultProxy(os.environ["AWS_ENDPOINT"])
        env = {"AWS_ENDPOINT": proxy.url()}
    else:
        proxy = FaultProxy(os.environ["AZURITE_BLOB_STORAGE_URL"])
        env = {"AZURITE_BLOB_STORAGE_URL": proxy.url()}
    server = make_server(extra_args=["--storage-retry-timeout", "3"], extra_env=env)
    yield server, proxy
    proxy.close()


def instance(frames: int = 1, size: int = 64):
    ds = pydicom.dcmread(io.BytesIO(sample("pydicom/CT_small.dcm")))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Rows = ds.Columns = size
    ds.NumberOfFrames = frames
    ds.PixelData = bytes(range(256)) * (size * size * 2 * frames // 256)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return ds, out.getvalue()


def store(server, content):
    body, content_type = related_body([content])
    started = time.monotonic()
    r = requests.post(server.root + "/studies", data=body, headers={"Content-Type": content_type}, timeout=120)
    return r, time.monotonic() - started


def assert_invisible(server, ds):
    r = requests.get(f"{server.root}/instances", params={"SOPInstanceUID": ds.SOPInstanceUID})
    assert r.status_code == 204, "a failed store is not searchable"
    url = f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    assert requests.get(f"{url}/metadata").status_code == 404
    feed = requests.get(f"{server.root}/changefeed", params={"includemetadata": "false"}).json()
    assert ds.SOPInstanceUID not in {e["SopInstanceUid"] for e in feed}


def assert_retrievable(server, ds, content):
    url = f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    r = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert r.status_code == 200
    assert r.content[128:] == content[128:]


def test_storage_down_gives_503_and_nothing_half_visible(proxied_server):
    server, proxy = proxied_server
    first, first_content = instance()
    assert store(server, first_content)[0].status_code == 200

    proxy.cut()
    second, second_content = instance()
    r, seconds = store(server, second_content)
    assert r.status_code == 503, r.text
    assert "storage" in r.json()["message"]
    assert r.headers.get("Retry-After")
    assert seconds < 60, f"the retry deadline (3 s) bounds the wait: took {seconds:.1f} s"
    assert_invisible(server, second)

    proxy.restore()
    assert_retrievable(server, first, first_content)  # what was stored before the outage is untouched
    r, _ = store(server, second_content)
    assert r.status_code == 200, r.text
    assert_retrievable(server, second, second_content)


def test_storage_lost_in_the_middle_of_a_multipart_upload(proxied_server):
    server, proxy = proxied_server
    # 3 frames of 2048 x 2048 x 16 bits: 24 MiB, above the 8 MiB threshold of multipart uploads.
    large, content = instance(frames=3, size=2048)
    proxy.cut_after(12 * 1024 * 1024)
    r, _ = store(server, content)
    assert r.status_code == 503, r.text
    assert_invisible(server, large)

    proxy.restore()
    r, _ = store(server, content)
    assert r.status_code == 200, r.text
    assert_retrievable(server, large, content)
