"""A real OpenID Connect issuer for the tests, served over HTTP on 127.0.0.1.

It publishes a discovery document and a JWKS with one RSA (RS256) and one EC P-256 (ES256) signing key, and issues
tokens at `POST /token` (client credentials). The token request may ask for what real issuers never do, so that
the tests can obtain every kind of bad token over HTTP: an expiry in the past (`expires_in` < 0), a `nbf` in the
future, another audience or issuer, a signature by a key the JWKS does not publish, and any header fields or
claims (`header` and `claims`: JSON objects merged over the usual ones, e.g. a `crit` header or `"exp": -1`).
`rotate()` replaces both keys (new `kid`s), as an identity provider's key rollover does; `jwks_failing` makes the
JWKS endpoint answer 503.
"""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class SigningKey:
    def __init__(self, alg: str):
        self.alg = alg
        self.kid = uuid.uuid4().hex
        if alg == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(alg)

    def jwk(self) -> dict:
        algorithm = jwt.algorithms.RSAAlgorithm if self.alg == "RS256" else jwt.algorithms.ECAlgorithm
        key = algorithm.to_jwk(self.private.public_key(), as_dict=True)
        return dict(key, kid=self.kid, alg=self.alg, use="sig")


class Issuer:
    """Start with `start()`, stop with `stop()`; `url` is the issuer identifier (no trailing slash)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {alg: SigningKey(alg) for alg in ("RS256", "ES256")}
        # Keys that sign but are not published: a token signed by one must be refused.
        self.unpublished = {alg: SigningKey(alg) for alg in ("RS256", "ES256")}
        self.jwks_fetches = 0
        self.jwks_failing = False
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, document):
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    self.reply(200, {
                        "issuer": issuer.url,
                        "jwks_uri": f"{issuer.url}/jwks",
                        "token_endpoint": f"{issuer.url}/token",
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                        "grant_types_supported": ["client_credentials"],
                    })
                elif self.path == "/jwks":
                    with issuer.lock:
                        issuer.jwks_fetches += 1
                        failing = issuer.jwks_failing
                        keys = [k.jwk() for k in issuer.keys.values()]
                    if failing:
                        self.reply(503, {"error": "temporarily_unavailable"})
                    else:
                        self.reply(200, {"keys": keys})
                else:
                    self.reply(404, {"error": "not_found"})

            def do_POST(self):
                if self.path != "/token":
                    self.reply(404, {"error": "not_found"})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if form.get("grant_type") != "client_credentials":
                    self.reply(400, {"error": "unsupported_grant_type"})
                    return
                self.reply(200, issuer.issue(form))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def rotate(self):
        """Replaces every published key by a new one with a new `kid`; the old keys are no longer published."""
        fresh = {alg: SigningKey(alg) for alg in ("RS256", "ES256")}
        with self.lock:
            self.keys = fresh

    def issue(self, form: dict) -> dict:
        now = int(time.time())
        expires_in = int(form.get("expires_in", "300"))
        claims = {
            "iss": form.get("issuer", self.url),
            "sub": form.get("client_id", "test-client"),
            "aud": form.get("audience", "dicomweb"),
            "iat": now,
            "exp": now + expires_in,
            "jti": uuid.uuid4().hex,
        }
        if "not_before" in form:
            claims["nbf"] = now + int(form["not_before"])
        roles = form.get("roles", "").split()
        # The roles claim where the test says (Entra ID: `roles`; Keycloak: `realm_access.roles`).
        path = form.get("roles_claim", "roles").split(".")
        target = claims
        for segment in path[:-1]:
            target = target.setdefault(segment, {})
        target[path[-1]] = roles
        claims.update(json.loads(form.get("claims", "{}")))
        alg = form.get("alg", "RS256")
        with self.lock:
            key = (self.unpublished if form.get("unpublished_key") else self.keys)[alg]
        headers = {"kid": key.kid, **json.loads(form.get("header", "{}"))}
        token = jwt.encode(claims, key.private, algorithm=alg, headers=headers)
        return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}


def request_token(issuer_url: str, **form) -> str:
    """A token from the issuer's token endpoint, over HTTP, as a client gets one."""
    import requests

    data = {"grant_type": "client_credentials", **{k: str(v) for k, v in form.items()}}
    r = requests.post(f"{issuer_url}/token", data=data, timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]
