"""Authentication and authorisation against a real OpenID Connect issuer on 127.0.0.1 (oidc_issuer.py).

The route matrix tries every route the server has (from `dicomweb routes`, which prints the server's own route
table, so a new route is covered without editing this file) with every kind of credential.
"""

import base64
import datetime
import http.client
import ipaddress
import json
import os
import subprocess
import threading
import time
from io import BytesIO

import pydicom
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydicom.uid import generate_uid

from conftest import free_port
from dicomweb_helpers import SERIES_RED_GREEN, SOP_RED, STUDY, related_body, sample
from oidc_issuer import request_token

DICOM_JSON = "application/dicom+json"
MULTIPART_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
MULTIPART_OCTETS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'

# Custom roles of the configuration file, next to the built-in DicomDataReader, DicomDataWriter, DicomDataOwner.
ROLES_TOML = """
[auth.roles]
Archivist = ["read", "delete"]
Operator = ["admin"]
"""

# Which permissions each role case grants.
ROLE_CASES = {
    "no roles": ("", set()),
    "unknown role": ("Visitor", set()),
    "DicomDataReader": ("DicomDataReader", {"read"}),
    "DicomDataWriter": ("DicomDataWriter", {"read", "write"}),
    "DicomDataOwner": ("DicomDataOwner", {"read", "write", "delete", "admin"}),
    "Archivist (configured)": ("Archivist", {"read", "delete"}),
    "Operator (configured, admin only)": ("Operator", {"admin"}),
    "two roles together": ("DicomDataReader Archivist", {"read", "delete"}),
}


def dicomweb_bin():
    return os.environ["DICOMWEB_BIN"]


def server_routes():
    out = subprocess.run([dicomweb_bin(), "routes"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def specified_permission(route):
    """What the issue specifies, independent of what the server declares: the health check is open; reading
    (WADO, QIDO, change feed) needs read, storing write, deleting delete."""
    if route["path"].endswith("/health"):
        return "open"
    return {"GET": "read", "POST": "write", "DELETE": "delete"}[route["method"]]


def tamper(token: str) -> str:
    """The token with its payload changed (the owner role granted) and the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["DicomDataOwner"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def fresh_instance(study=None):
    """red-triangle.dcm under new UIDs (a new study unless `study` is given), so that a store succeeds."""
    ds = pydicom.dcmread(BytesIO(sample("red-triangle.dcm")))
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return ds, out.getvalue()


def store(root, owner, content):
    r = requests.post(
        f"{root}/v2/studies",
        data=content,
        headers={"Content-Type": "application/dicom", "Accept": DICOM_JSON, "Authorization": f"Bearer {owner}"},
    )
    assert r.status_code == 200, r.text


def allowed_request(route, root, owner, prepare=True):
    """A request to `route` that succeeds when authorised: (method, url, headers, body, expected 2xx status).
    `prepare`: store what a DELETE will delete (needless when the request is to be refused)."""
    method, path = route["method"], route["path"]
    last = path.rstrip("/").split("/")[-1]
    ids = {"study": STUDY, "series": SERIES_RED_GREEN, "instance": SOP_RED, "frames": "1", "attribute": "7FE00010"}
    if method == "DELETE" and prepare:
        # Something of its own to delete, so that every DELETE answers 204.
        ds, content = fresh_instance()
        store(root, owner, content)
        ids = {"study": ds.StudyInstanceUID, "series": ds.SeriesInstanceUID, "instance": ds.SOPInstanceUID}
    url = root + path.format(**ids)
    if method == "DELETE":
        return "DELETE", url, {}, None, 204
    if method == "POST":
        _, content = fresh_instance(study=ids["study"] if "{study}" in path else None)
        body, content_type = related_body([content])
        return "POST", url, {"Content-Type": content_type, "Accept": DICOM_JSON}, body, 200
    if last in ("health", "changefeed", "latest"):
        return "GET", url, {}, None, 200
    if last == "metadata" or last in ("studies", "series", "instances"):
        return "GET", url, {"Accept": DICOM_JSON}, None, 200
    if last in ("{frames}", "{attribute}", "bulkdata"):
        return "GET", url, {"Accept": MULTIPART_OCTETS}, None, 200
    if last in ("rendered", "thumbnail"):
        return "GET", url, {"Accept": "image/jpeg"}, None, 200
    return "GET", url, {"Accept": MULTIPART_DICOM}, None, 200


def test_every_route_with_every_credential(make_auth_server, issuer, tmp_path):
    config = tmp_path / "dicomweb.toml"
    config.write_text(ROLES_TOML)
    server = make_auth_server(["--config", str(config)])
    root = server.root
    token = lambda **form: request_token(issuer.url, **{"audience": "dicomweb", **form})  # noqa: E731
    owner = token(roles="DicomDataOwner")
    body, content_type = related_body([sample(n) for n in ("red-triangle.dcm", "green-square.dcm", "blue-circle.dcm")])
    r = requests.post(f"{root}/v2/studies", data=body,
                      headers={"Content-Type": content_type, "Authorization": f"Bearer {owner}"})
    assert r.status_code == 200, r.text

    # Credentials that must be refused with 401: (case, Authorization header or None, reason in the challenge).
    refused = [
        ("no token", None, None),
        ("another scheme", "Basic ZGljb206ZGljb20=", None),
        ("not a JWT", "Bearer not-a-jwt", "well-formed"),
        ("expired", f"Bearer {token(roles='DicomDataOwner', expires_in=-600)}", "expired"),
        ("not yet valid", f"Bearer {token(roles='DicomDataOwner', not_before=600)}", "not valid yet"),
        ("wrong audience", f"Bearer {token(roles='DicomDataOwner', audience='another-api')}", "audience"),
        ("wrong issuer", f"Bearer {token(roles='DicomDataOwner', issuer='http://127.0.0.1:1/other')}", "issuer"),
        ("tampered signature", f"Bearer {tamper(token(roles='DicomDataReader'))}", "signature"),
        ("key the issuer does not publish", f"Bearer {token(roles='DicomDataOwner', unpublished_key=1)}", "key"),
        ("ES256 key the issuer does not publish",
         f"Bearer {token(roles='DicomDataOwner', alg='ES256', unpublished_key=1)}", "key"),
    ]
    # Valid tokens, each with the permissions its roles grant; RS256 and ES256 alternate.
    valid = [
        (name, f"Bearer {token(roles=roles, alg='ES256' if i % 2 else 'RS256')}", permissions)
        for i, (name, (roles, permissions)) in enumerate(ROLE_CASES.items())
    ]

    routes = server_routes()
    assert {r["permission"] for r in routes} <= {"open", "read", "write", "delete", "admin"}
    assert len(routes) >= 3 * 20, "the route list covers all three version prefixes"
    failures = []

    def check(route, case, status, expected, response):
        if status != expected:
            failures.append(f"{route['method']} {route['path']} with {case}: {status}, expected {expected}: "
                            f"{response.text[:200]}")

    for route in routes:
        permission = specified_permission(route)
        if route["permission"] != permission:
            failures.append(f"{route['method']} {route['path']} declares {route['permission']}, not {permission}")
        open_route = permission == "open"
        for case, authorization, reason in refused:
            method, url, headers, body, ok = allowed_request(route, root, owner, prepare=open_route)
            if authorization:
                headers["Authorization"] = authorization
            r = requests.request(method, url, headers=headers, data=body)
            check(route, case, r.status_code, ok if open_route else 401, r)
            if not open_route and r.status_code == 401:
                challenge = r.headers.get("WWW-Authenticate", "")
                if not challenge.startswith("Bearer"):
                    failures.append(f"{route['path']} with {case}: challenge {challenge!r}")
                if reason is None and "error=" in challenge:
                    failures.append(f"{route['path']} with {case}: no token, yet an error code: {challenge!r}")
                if reason and ('error="invalid_token"' not in challenge or reason not in challenge):
                    failures.append(f"{route['path']} with {case}: challenge {challenge!r} lacks {reason!r}")
        for case, authorization, permissions in valid:
            allowed = open_route or permission in permissions
            method, url, headers, body, ok = allowed_request(route, root, owner, prepare=allowed)
            headers["Authorization"] = authorization
            r = requests.request(method, url, headers=headers, data=body)
            expected = ok if allowed else 403
            check(route, case, r.status_code, expected, r)
            if expected == 403 and 'error="insufficient_scope"' not in r.headers.get("WWW-Authenticate", ""):
                failures.append(f"{route['path']} with {case}: 403 without insufficient_scope")
    assert not failures, "\n".join(failures[:40]) + f"\n({len(failures)} failures)"

    # The reasons are logged, the tokens never.
    server.log.flush()
    log = (server.data_dir.parent / "server.log").read_text(errors="replace")
    assert "request refused: invalid token: the token has expired" in log
    for _, authorization, _ in refused + valid:
        if authorization and authorization.startswith("Bearer "):
            assert authorization.split(" ", 1)[1] not in log


def test_key_rotation_and_the_key_cache(make_auth_server, issuer):
    server = make_auth_server()
    # The server fetches the key set at most once a second; let a second pass since its fetch at start.
    time.sleep(1.1)
    url = f"{server.root}/v2/changefeed"
    rs256 = request_token(issuer.url, roles="DicomDataReader")
    es256 = request_token(issuer.url, roles="DicomDataReader", alg="ES256")
    fetches = issuer.jwks_fetches
    for _ in range(5):
        for old in (rs256, es256):
            assert requests.get(url, headers={"Authorization": f"Bearer {old}"}).status_code == 200
    assert issuer.jwks_fetches == fetches, "keys are cached, never fetched per request"

    issuer.rotate()
    for alg in ("RS256", "ES256"):
        new = request_token(issuer.url, roles="DicomDataReader", alg=alg)
        r = requests.get(url, headers={"Authorization": f"Bearer {new}"})
        assert r.status_code == 200, f"a token signed by the rotated {alg} key: {r.status_code} {r.text}"
    assert issuer.jwks_fetches > fetches, "an unknown kid made the server fetch the key set again"
    # The old keys are gone from the issuer's key set, so their tokens no longer verify.
    r = requests.get(url, headers={"Authorization": f"Bearer {rs256}"})
    assert r.status_code == 401 and "key" in r.headers["WWW-Authenticate"], r.headers


def test_keys_are_refreshed_on_a_schedule(make_auth_server, issuer):
    make_auth_server(["--auth-jwks-refresh", "1"])
    fetches = issuer.jwks_fetches
    deadline = time.monotonic() + 10
    while issuer.jwks_fetches < fetches + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert issuer.jwks_fetches >= fetches + 2, "no scheduled refresh of the key set"


def test_while_the_issuer_fails_unknown_kids_cost_it_at_most_one_fetch_a_second(make_auth_server, issuer):
    server = make_auth_server()
    url = f"{server.root}/v2/changefeed"
    reader = request_token(issuer.url, roles="DicomDataReader")
    unknown = request_token(issuer.url, roles="DicomDataReader", unpublished_key=1)
    issuer.jwks_failing = True
    fetches = issuer.jwks_fetches
    answers = []
    started = time.monotonic()

    def hammer():
        with requests.Session() as session:
            while time.monotonic() - started < 2.5:
                r = session.get(url, headers={"Authorization": f"Bearer {unknown}"}, timeout=10)
                answers.append((r.status_code, r.headers.get("Retry-After")))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert issuer.jwks_fetches - fetches <= elapsed + 1, f"{issuer.jwks_fetches - fetches} fetches in {elapsed:.1f} s"
    assert answers and all(status == 503 and retry for status, retry in answers), set(answers)
    # The cached keys keep working while the issuer fails.
    assert requests.get(url, headers={"Authorization": f"Bearer {reader}"}).status_code == 200


def test_a_key_published_right_after_a_fetch_is_accepted_not_refused(make_auth_server, issuer):
    server = make_auth_server()
    url = f"{server.root}/v2/changefeed"
    time.sleep(1.1)
    # A token naming a key the issuer does not publish makes the server fetch the key set...
    unknown = request_token(issuer.url, roles="DicomDataReader", unpublished_key=1)
    r = requests.get(url, headers={"Authorization": f"Bearer {unknown}"})
    assert r.status_code == 401 and "key" in r.headers["WWW-Authenticate"]
    fetches = issuer.jwks_fetches
    # ...and the issuer rotates its keys just after: a token signed with a new key waits for the next fetch (at
    # most a second) instead of being refused.
    issuer.rotate()
    new = request_token(issuer.url, roles="DicomDataReader")
    started = time.monotonic()
    r = requests.get(url, headers={"Authorization": f"Bearer {new}"})
    assert r.status_code == 200, f"{r.status_code} {r.headers.get('WWW-Authenticate')}"
    assert time.monotonic() - started < 2.5
    assert issuer.jwks_fetches == fetches + 1


def test_a_key_the_issuer_removed_is_refused_after_the_scheduled_refresh(make_auth_server, issuer):
    server = make_auth_server(["--auth-jwks-refresh", "1"])
    url = f"{server.root}/v2/changefeed"
    old = request_token(issuer.url, roles="DicomDataReader")
    assert requests.get(url, headers={"Authorization": f"Bearer {old}"}).status_code == 200
    # No token with a new key arrives: only the scheduled refresh can notice the removal.
    issuer.rotate()
    deadline = time.monotonic() + 5
    while True:
        r = requests.get(url, headers={"Authorization": f"Bearer {old}"})
        if r.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 401 and "key" in r.headers["WWW-Authenticate"], r.status_code

    # The interval is bounded, so that removed keys are dropped within an hour whatever is configured.
    capped = make_auth_server(["--auth-jwks-refresh", "86400"])
    capped.log.flush()
    log = (capped.data_dir.parent / "server.log").read_text(errors="replace")
    assert "capped at 3600 seconds" in log


def test_lenient_token_checks_are_refused_with_the_reason(make_auth_server, issuer):
    server = make_auth_server()
    url = f"{server.root}/v2/changefeed"
    token = lambda **form: request_token(issuer.url, roles="DicomDataReader", **form)  # noqa: E731
    refused = [
        ("unknown crit header", token(header='{"crit": ["exp"], "exp": 1}'), "critical extensions"),
        ("iss as an array", token(claims=json.dumps({"iss": [issuer.url]})), "iss claim is malformed"),
        ("negative exp", token(claims='{"exp": -1}'), "exp claim is malformed"),
        ("non-numeric exp", token(claims='{"exp": "tomorrow"}'), "exp claim is malformed"),
        ("aud as a number", token(claims='{"aud": 7}'), "aud claim is malformed"),
    ]
    for case, bad, reason in refused:
        r = requests.get(url, headers={"Authorization": f"Bearer {bad}"})
        challenge = r.headers.get("WWW-Authenticate", "")
        assert r.status_code == 401 and 'error="invalid_token"' in challenge and reason in challenge, (case, challenge)

    # Two Authorization headers are refused: which one counts would be a guess.
    reader = token()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("GET", "/v2/changefeed")
    connection.putheader("Authorization", f"Bearer {reader}")
    connection.putheader("Authorization", "Bearer not-a-jwt")
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 400 and b"Authorization headers" in body, (response.status, body)
    assert requests.get(url, headers={"Authorization": f"Bearer {reader}"}).status_code == 200


def test_keycloak_realm_roles_through_a_dotted_claim_path(make_auth_server, issuer):
    server = make_auth_server(["--auth-roles-claim", "realm_access.roles", "--auth-algorithms", "ES256"])
    url = f"{server.root}/changefeed"
    reader = request_token(issuer.url, audience="dicomweb", roles="DicomDataReader", alg="ES256",
                           roles_claim="realm_access.roles")
    assert requests.get(url, headers={"Authorization": f"Bearer {reader}"}).status_code == 200
    top_level = request_token(issuer.url, audience="dicomweb", roles="DicomDataReader", alg="ES256")
    assert requests.get(url, headers={"Authorization": f"Bearer {top_level}"}).status_code == 403
    rs256 = request_token(issuer.url, audience="dicomweb", roles="DicomDataReader", alg="RS256",
                          roles_claim="realm_access.roles")
    r = requests.get(url, headers={"Authorization": f"Bearer {rs256}"})
    assert r.status_code == 401 and "algorithm" in r.headers["WWW-Authenticate"]


def run_to_exit(args, timeout=30):
    return subprocess.run([dicomweb_bin(), "serve", *args], capture_output=True, text=True, timeout=timeout)


def test_anonymous_access_beyond_loopback_is_refused(tmp_path):
    result = run_to_exit(["--bind", f"0.0.0.0:{free_port()}", "--data-dir", str(tmp_path)])
    assert result.returncode != 0
    assert "without authentication" in result.stderr and "--allow-anonymous" in result.stderr, result.stderr
    assert not (tmp_path / "index").exists(), "refused before opening anything"


def test_an_unreachable_issuer_stops_the_server_at_start(tmp_path):
    issuer = f"http://127.0.0.1:{free_port()}"
    result = run_to_exit(["--bind", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path),
                          "--auth-issuer", issuer, "--auth-audience", "dicomweb"])
    assert result.returncode != 0
    assert f"identity provider {issuer}" in result.stderr, result.stderr


def test_without_auth_the_server_says_so_and_health_is_open(server, make_auth_server):
    server.log.flush()
    assert "authentication is off" in (server.data_dir.parent / "server.log").read_text(errors="replace")
    assert requests.get(f"{make_auth_server().root}/health").status_code == 200


def test_cors_is_off_by_default_and_allows_configured_origins(server, make_auth_server, issuer):
    origin = "http://viewer.example:3000"
    r = requests.get(f"{server.root}/v2/changefeed", headers={"Origin": origin})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers

    cors = make_auth_server(["--cors-origin", f"{origin},https://other.example"])
    preflight = requests.options(f"{cors.root}/v2/studies", headers={
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    })
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    # A refusal carries the CORS headers too, so that a browser viewer can read its 401.
    r = requests.get(f"{cors.root}/v2/changefeed", headers={"Origin": origin})
    assert r.status_code == 401 and r.headers["Access-Control-Allow-Origin"] == origin
    assert "www-authenticate" in r.headers["Access-Control-Expose-Headers"].lower()
    reader = request_token(issuer.url, audience="dicomweb", roles="DicomDataReader")
    r = requests.get(f"{cors.root}/v2/changefeed", headers={"Origin": origin, "Authorization": f"Bearer {reader}"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == origin
    other = requests.options(f"{cors.root}/v2/studies", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in other.headers


def self_signed_certificate(directory):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_with_a_certificate_and_key(make_auth_server, issuer, tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    server = make_auth_server(["--tls-cert", str(cert), "--tls-key", str(key)], scheme="https", verify=str(cert))
    assert server.root.startswith("https://")
    reader = request_token(issuer.url, audience="dicomweb", roles="DicomDataReader")
    r = requests.get(f"{server.root}/v2/changefeed", headers={"Authorization": f"Bearer {reader}"}, verify=str(cert))
    assert r.status_code == 200 and r.json() == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.port}/health", timeout=5)


def test_tls_needs_both_files(tmp_path):
    cert, _ = self_signed_certificate(tmp_path)
    result = run_to_exit(["--bind", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path), "--tls-cert", str(cert)])
    assert result.returncode != 0 and "--tls-key" in result.stderr, result.stderr
