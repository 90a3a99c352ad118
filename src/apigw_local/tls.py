"""Local TLS material: a CA generated once, a certificate for localhost, and a CA bundle.

Handlers written for AWS build `https://{domainName}/{stage}` to reach the Management API. The
gateway serves TLS on its WebSocket port with a certificate from a local CA, and the Lambda
workers trust that CA through the standard `AWS_CA_BUNDLE` variable. The bundle holds the local
CA *and* certifi's public roots, so a worker can still reach real AWS endpoints.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
BUNDLE = "ca-bundle.pem"

HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsMaterial:
    ca_cert: Path
    ca_bundle: Path  # local CA + certifi's roots, for AWS_CA_BUNDLE
    server_context: ssl.SSLContext

    def client_context(self) -> ssl.SSLContext:
        """An SSLContext that trusts the local CA (for tests and tools)."""
        return ssl.create_default_context(cafile=str(self.ca_bundle))


def _load_or_create_ca(state_dir: Path) -> trustme.CA:
    cert, key = state_dir / CA_CERT, state_dir / CA_KEY
    if cert.exists() and key.exists():
        try:
            return trustme.CA.from_pem(cert.read_bytes(), key.read_bytes())
        except Exception:  # unreadable or from an older format: make a new one
            pass
    ca = trustme.CA(organization_name="apigw-local", organization_unit_name="local CA")
    state_dir.mkdir(parents=True, exist_ok=True)
    cert.write_bytes(ca.cert_pem.bytes())
    key.write_bytes(ca.private_key_pem.bytes())
    os.chmod(key, 0o600)
    return ca


def ensure_tls(state_dir: str | os.PathLike[str], extra_hosts: tuple[str, ...] = ()) -> TlsMaterial:
    """Create (or reuse) the local CA under `state_dir` and a server context for localhost."""
    state = Path(state_dir)
    ca = _load_or_create_ca(state)
    hosts = tuple(dict.fromkeys(HOSTS + tuple(h for h in extra_hosts if h)))
    leaf = ca.issue_cert(*hosts)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    leaf.configure_cert(ctx)
    bundle = state / BUNDLE
    content = ca.cert_pem.bytes() + b"\n" + Path(certifi.where()).read_bytes()
    if not bundle.exists() or bundle.read_bytes() != content:
        tmp = bundle.with_suffix(".tmp")
        tmp.write_bytes(content)
        tmp.replace(bundle)
    return TlsMaterial(ca_cert=state / CA_CERT, ca_bundle=bundle, server_context=ctx)
