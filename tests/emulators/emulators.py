"""Creates the test bucket in moto's S3 server and the test container in Azurite.

Standard library only (no boto3 / azure-storage-blob needed): S3 through unsigned requests (moto's server does
not verify signatures), Azure through Shared Key signed requests with Azurite's well-known development account.

Usage:
  python emulators.py S3_ENDPOINT BUCKET AZURITE_URL CONTAINER
Exits non-zero, with the emulator's answer, if either cannot be created.
"""

import base64
import hashlib
import hmac
import sys
import urllib.parse
import urllib.error
import urllib.request
from email.utils import formatdate

# Azurite's documented development account (public, not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
API_VERSION = "2021-08-06"


def send(request: urllib.request.Request, what: str) -> bytes:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(f"{what}: HTTP {response.status}", file=sys.stderr)
            return response.read()
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")
        sys.exit(f"{what} failed: HTTP {error.code} {body}")


def azure_request(method: str, azurite_url: str, container: str, query: dict) -> urllib.request.Request:
    """A Shared Key signed request on a container of the emulator's development account."""
    date = formatdate(usegmt=True)
    # Path-style emulator URL: /<account>/<container>; the canonical resource prefixes the account again,
    # then lists the query parameters sorted, one "name:value" a line.
    resource = f"/{ACCOUNT}/{ACCOUNT}/{container}" + "".join(f"\n{k}:{v}" for k, v in sorted(query.items()))
    headers = f"x-ms-date:{date}\nx-ms-version:{API_VERSION}\n"
    # VERB, the 11 standard headers (Content-Encoding, -Language, -Length (empty when 0), -MD5,
    # Content-Type, Date, If-*, Range), then the x-ms headers and the resource.
    content_type = "application/octet-stream" if method == "PUT" else ""  # urllib adds a form type to bodies
    string_to_sign = f"{method}\n" + "\n" * 4 + content_type + "\n" + "\n" * 6 + headers + resource
    key = base64.b64decode(ACCOUNT_KEY)
    signature = base64.b64encode(hmac.new(key, string_to_sign.encode(), hashlib.sha256).digest()).decode()
    request_headers = {
        "x-ms-date": date,
        "x-ms-version": API_VERSION,
        "Authorization": f"SharedKey {ACCOUNT}:{signature}",
    }
    if content_type:
        request_headers["Content-Type"] = content_type
    return urllib.request.Request(
        f"{azurite_url}/{ACCOUNT}/{container}?{urllib.parse.urlencode(query)}",
        method=method,
        data=b"" if method == "PUT" else None,
        headers=request_headers,
    )


def create_bucket(endpoint: str, bucket: str) -> None:
    send(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT", data=b""), f"create S3 bucket {bucket}")


def create_container(azurite_url: str, container: str) -> None:
    request = azure_request("PUT", azurite_url, container, {"restype": "container"})
    send(request, f"create Azure container {container}")


if __name__ == "__main__":
    if len(sys.argv) == 5:
        s3_endpoint, bucket, azurite_url, container = sys.argv[1:]
        create_bucket(s3_endpoint, bucket)
        create_container(azurite_url, container)
    else:
        sys.exit(__doc__)
