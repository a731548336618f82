"""The testbed's small PKI: one CA, a server certificate per KME, a client certificate per SAE.

Layout of a testbed folder (what `qkdbed up` writes and `qkdbed keys` and users' programs read):

    <dir>/pki/ca.pem               CA certificate: clients verify KMEs with it, KMEs verify SAEs with it
    <dir>/pki/ca.key               CA private key (0600; only needed to issue more certificates)
    <dir>/pki/kme-<NODE>.pem/.key  KME server certificate (CN "kme-<NODE>", SANs: its host names and IPs)
    <dir>/pki/sae-<SAE>.pem/.key   SAE client certificate (CN = the SAE ID, which is how the KME knows the caller)
    <dir>/kme.json                 node → KME API base URL, e.g. {"U1": "https://127.0.0.1:8441"}

Keys are ECDSA P-256 (small, fast handshakes: the load test opens many connections) and are written with mode
0600. Certificates are valid for VALIDITY_DAYS: a testbed is rebuilt long before. KME certificates carry both
DNS and IP subjectAltNames because many ETSI clients connect by IP, and hostname checking needs an IP SAN then.
Issuing is idempotent: existing files are reused, so restarting a testbed keeps the credentials users have.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: A testbed lives for hours or days; a year is long enough and still expires.
VALIDITY_DAYS = 365
#: Backdating covers clock skew between containers of one testbed.
BACKDATE = dt.timedelta(minutes=5)
PKI_DIR = "pki"
KME_JSON = "kme.json"


@dataclass(frozen=True)
class CertPaths:
    cert: Path
    key: Path


def pki_dir(testbed_dir: Path | str) -> Path:
    return Path(testbed_dir) / PKI_DIR


def ca_paths(testbed_dir: Path | str) -> CertPaths:
    d = pki_dir(testbed_dir)
    return CertPaths(d / "ca.pem", d / "ca.key")


def kme_paths(testbed_dir: Path | str, node: str) -> CertPaths:
    d = pki_dir(testbed_dir)
    return CertPaths(d / f"kme-{node}.pem", d / f"kme-{node}.key")


def sae_paths(testbed_dir: Path | str, sae_id: str) -> CertPaths:
    d = pki_dir(testbed_dir)
    return CertPaths(d / f"sae-{sae_id}.pem", d / f"sae-{sae_id}.key")


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only (created 0600, never briefly world-readable)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "qkdbed testbed"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _load(paths: CertPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
    key = serialization.load_pem_private_key(paths.key.read_bytes(), password=None)
    return cert, key  # type: ignore[return-value]


def create_ca(testbed_dir: Path | str, name: str = "qkdbed testbed CA") -> CertPaths:
    """Create the CA (or reuse the one already in the folder)."""
    paths = ca_paths(testbed_dir)
    if paths.cert.is_file() and paths.key.is_file():
        return paths
    paths.cert.parent.mkdir(parents=True, exist_ok=True)
    key = _new_key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name)).issuer_name(_name(name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(paths.key, _key_pem(key))
    _write_public(paths.cert, cert.public_bytes(serialization.Encoding.PEM))
    return paths


def _issue(testbed_dir: Path | str, paths: CertPaths, cn: str, server: bool, hosts: Iterable[str] = ()) -> CertPaths:
    if paths.cert.is_file() and paths.key.is_file():
        return paths
    ca_cert, ca_key = _load(ca_paths(testbed_dir))
    key = _new_key()
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn)).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        sans: list[x509.GeneralName] = []
        for h in dict.fromkeys(hosts):  # keep order, drop repeats
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        if not sans:
            raise ValueError(f"KME certificate {cn!r} needs at least one host name or IP address")
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_private(paths.key, _key_pem(key))
    _write_public(paths.cert, cert.public_bytes(serialization.Encoding.PEM))
    return paths


def issue_kme_cert(testbed_dir: Path | str, node: str, hosts: Iterable[str]) -> CertPaths:
    """Server certificate of KME `node`, valid for each host name / IP address in `hosts`."""
    return _issue(testbed_dir, kme_paths(testbed_dir, node), f"kme-{node}", True, hosts)


def issue_sae_cert(testbed_dir: Path | str, sae_id: str) -> CertPaths:
    """Client certificate of SAE `sae_id`: its subject CN is the SAE ID the KMEs will see."""
    return _issue(testbed_dir, sae_paths(testbed_dir, sae_id), sae_id, False)


def ensure_testbed_pki(testbed_dir: Path | str, kme_hosts: dict[str, Iterable[str]],
                       sae_ids: Iterable[str]) -> Path:
    """Create (or complete) the testbed's PKI: the CA, one certificate per KME node (`kme_hosts`: node → the host
    names and IPs clients use for it) and one per SAE. Returns the pki folder."""
    create_ca(testbed_dir)
    for node, hosts in kme_hosts.items():
        issue_kme_cert(testbed_dir, node, list(hosts) or ["localhost", "127.0.0.1"])
    for sae in sae_ids:
        issue_sae_cert(testbed_dir, sae)
    return pki_dir(testbed_dir)


def write_kme_json(testbed_dir: Path | str, urls: dict[str, str]) -> Path:
    """Write `<dir>/kme.json` (node → KME API base URL such as "https://10.0.0.1:8441")."""
    path = Path(testbed_dir) / KME_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_public(path, (json.dumps(urls, indent=2, sort_keys=True) + "\n").encode())
    return path


def read_kme_json(testbed_dir: Path | str) -> dict[str, str]:
    """Read `<dir>/kme.json`; a value may be a URL string or an object with a "url" field."""
    raw = json.loads((Path(testbed_dir) / KME_JSON).read_text())
    return {node: (v["url"] if isinstance(v, dict) else v) for node, v in raw.items()}


# --- TLS contexts ----------------------------------------------------------------------------------------------
def server_ssl_context(testbed_dir: Path | str, node: str) -> ssl.SSLContext:
    """TLS context of KME `node`'s API: its certificate, and client certificates required and checked against
    the testbed CA (mutual TLS)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_paths(testbed_dir).cert))
    paths = kme_paths(testbed_dir, node)
    ctx.load_cert_chain(str(paths.cert), str(paths.key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def client_ssl_context(testbed_dir: Path | str, sae_id: str) -> ssl.SSLContext:
    """TLS context of SAE `sae_id`: verifies the KME against the testbed CA (host name included) and presents the
    SAE's certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_paths(testbed_dir).cert))
    paths = sae_paths(testbed_dir, sae_id)
    ctx.load_cert_chain(str(paths.cert), str(paths.key))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
