"""HTTP itself against hostile or sloppy clients: where the URLs in responses come from, HEAD, 405 and OPTIONS,
malformed requests and bodies shorter than their Content-Length."""

import http.client
import re
import socket
import time

import pytest
import requests

from dicomweb_helpers import SOP_RED, STUDY, related_body, sample, value

SERIES_RED = "1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652"
HOSTILE = {
    "Host": "javascript://evil.example.com/x",
    "X-Forwarded-Host": "evil.example.com",
    "X-Forwarded-Proto": "javascript",
    "Forwarded": "proto=javascript;host=evil.example.com",
}


def store(server, headers=None, url="/studies"):
    body, content_type = related_body([sample("red-triangle.dcm")])
    return requests.post(server.root + url, data=body, headers={"Content-Type": content_type, **(headers or {})})


def retrieve_urls(response_json):
    """The study's RetrieveURL and every instance's."""
    urls = value(response_json, "00081190") or []
    for item in value(response_json, "00081199") or []:
        urls += value(item, "00081190") or []
    return urls


# RetrieveURLs


def test_retrieve_urls_ignore_forwarding_headers_from_untrusted_clients(server):
    r = store(server, HOSTILE)
    assert r.status_code == 200, r.text
    urls = retrieve_urls(r.json())
    assert urls and all(u.startswith(f"http://127.0.0.1:{server.port}/studies/{STUDY}") for u in urls), urls
    found = requests.get(server.root + "/v2/studies", headers=HOSTILE)
    assert found.status_code == 200
    assert value(found.json()[0], "00081190") == [f"http://127.0.0.1:{server.port}/v2/studies/{STUDY}"]
    # A valid Host header is what the client addressed, and is used.
    r = requests.get(server.root + "/studies", headers={"Host": "pacs.example.org:8042"})
    assert value(r.json()[0], "00081190") == [f"http://pacs.example.org:8042/studies/{STUDY}"]


def test_a_trusted_proxy_names_scheme_and_host_but_only_valid_ones(make_server):
    server = make_server(["--trusted-proxy", "127.0.0.0/8"])
    r = store(server, {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pacs.example.org"})
    assert r.status_code == 200, r.text
    assert retrieve_urls(r.json())[0] == f"https://pacs.example.org/studies/{STUDY}"
    # What is not an http(s) scheme or a host is not believed, even from a trusted proxy.
    invalid = {"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "evil.example.com/x?", "Host": "a b"}
    r = requests.get(server.root + "/v1/studies", headers=invalid)
    assert value(r.json()[0], "00081190") == [f"http://127.0.0.1:{server.port}/v1/studies/{STUDY}"]


def test_a_public_url_wins_and_a_bad_one_stops_the_start(make_server):
    server = make_server(extra_env={"DICOMWEB_PUBLIC_URL": "https://pacs.example.org/dicomweb/"})
    store(server, HOSTILE)
    r = requests.get(server.root + "/v2/studies", headers=HOSTILE)
    assert value(r.json()[0], "00081190") == [f"https://pacs.example.org/dicomweb/v2/studies/{STUDY}"]
    with pytest.raises(RuntimeError, match="exited"):
        make_server(["--public-url", "javascript://evil.example.com/"])


# HEAD, 405, OPTIONS


def test_head_answers_like_get_without_a_body(server):
    assert store(server).status_code == 200
    instance = f"/studies/{STUDY}/series/{SERIES_RED}/instances/{SOP_RED}"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for path, accept in [
        ("/health", "*/*"),
        (instance, "application/dicom"),
        (f"/v2{instance}/metadata", "application/dicom+json"),
        ("/v1/studies", "application/dicom+json"),
        ("/studies/1.2.3/metadata", "application/dicom+json"),
    ]:
        connection.request("GET", path, headers={"Accept": accept})
        get = connection.getresponse()
        get_body = get.read()
        # HEAD then GET on the same connection: a body sent after the HEAD would garble the next response.
        connection.request("HEAD", path, headers={"Accept": accept})
        head = connection.getresponse()
        assert head.read() == b""
        assert head.status == get.status, path
        assert head.getheader("Content-Type") == get.getheader("Content-Type"), path
        assert head.getheader("Content-Length") == get.getheader("Content-Length") == str(len(get_body)), path
    # A multipart retrieve streams (chunked): so does its HEAD, without a single chunk.
    connection.request("HEAD", f"/studies/{STUDY}", headers={"Accept": 'multipart/related; type="application/dicom"'})
    head = connection.getresponse()
    assert head.read() == b"" and head.status == 200
    assert head.getheader("Content-Type").startswith("multipart/related")
    assert head.getheader("Transfer-Encoding") == "chunked"
    connection.request("GET", "/health")
    assert connection.getresponse().read() == b'{"status":"healthy"}'
    connection.close()


def test_other_methods_are_405_with_allow_and_options_is_204(server):
    r = requests.put(server.root + "/studies")
    assert r.status_code == 405
    assert r.headers["Allow"] == "POST, GET, HEAD, OPTIONS"
    assert r.json()["status"] == 405 and "PUT" in r.json()["message"]
    r = requests.patch(f"{server.root}/v2/studies/{STUDY}/series/{SERIES_RED}")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD, DELETE, OPTIONS"
    r = requests.options(f"{server.root}/v1/studies/{STUDY}/metadata")
    assert r.status_code == 204
    assert r.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert requests.put(server.root + "/no-such-path").status_code == 404


# Malformed requests and short bodies


def exchange(server, data: bytes, close_write=True, wait=5.0) -> bytes:
    """Sends raw bytes; returns what the server answered before it closed (or `wait` passed)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as s:
        # The server may answer and close before everything was sent (an oversized header block): what it
        # answered is still there to read.
        try:
            s.sendall(data)
            if close_write:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        return answer


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET /studies HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /studies HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    b"POST /studies HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /studies HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n",
    b"GET /studies HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(200)) + b"\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
]


def test_malformed_requests_are_refused_and_never_logged_as_errors(server):
    for request in MALFORMED:
        answer = exchange(server, request)
        assert re.match(rb"HTTP/1\.1 4\d\d ", answer), (request[:60], answer[:100])
    assert requests.get(server.root + "/health").status_code == 200
    time.sleep(0.2)
    log = open(server.log.name, encoding="utf-8", errors="replace").read()
    assert not [line for line in log.splitlines() if re.search(r"\bERROR\b", line)], log[-2000:]
    # Reported once, as a warning, however many there were.
    assert len(re.findall(r"WARN .*could not be read", log)) == 1, log[-2000:]


def stow_head(content_type: str, length: int) -> bytes:
    return (
        f"POST /studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def nothing_stored(server):
    assert requests.get(server.root + "/studies").status_code == 204
    assert requests.get(f"{server.root}/studies/{STUDY}/metadata").status_code == 404


@pytest.mark.parametrize("cut", ["after the closing delimiter", "inside the part", "in the next part's headers"])
def test_a_multipart_body_shorter_than_its_content_length_is_not_stored(server, cut):
    """Cut short by the connection, the last part read is not stored, even when it was whole (parts before it
    would be: the body went on past them)."""
    body, content_type = related_body([sample("red-triangle.dcm")])
    sent = body if cut == "after the closing delimiter" else body[: len(body) // 2]
    if cut == "in the next part's headers":
        body, content_type = related_body([sample("red-triangle.dcm"), sample("green-square.dcm")])
        sent = body[: body.index(b"--DICOMwebBoundary", 1) + len("--DICOMwebBoundary\r\nContent-Ty")]
    answer = exchange(server, stow_head(content_type, len(body) + 100) + sent)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    nothing_stored(server)


def test_a_single_instance_body_shorter_than_its_content_length_is_not_stored(server):
    instance = sample("red-triangle.dcm")
    answer = exchange(server, stow_head("application/dicom", len(instance) + 100) + instance)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    nothing_stored(server)


def test_a_stalled_body_is_not_answered_as_complete(server):
    body, content_type = related_body([sample("red-triangle.dcm")])
    # Everything but the 100 bytes promised: the server waits for them rather than answering.
    answer = exchange(server, stow_head(content_type, len(body) + 100) + body, close_write=False, wait=1.0)
    assert answer == b"", answer[:200]
    nothing_stored(server)
