"""TLS for clusters nbfan starts: a self-signed CA and one certificate under `$NBFAN_HOME/tls/`.

Dask's TLS is mutual: the scheduler, the workers and every client must present a certificate
signed by the cluster's CA, so a process without these files cannot connect at all. The files
live on disk (not in memory like `Security.temporary()`), so every process of the user that
shares NBFAN_HOME, and workers on other hosts the files are copied to, can join.

Private keys are written with mode 0600 (created that way, never world-readable for a moment).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nbfan.config import nbfan_home
from nbfan.exception import InvalidError

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CERT_FILE = "cluster.pem"
KEY_FILE = "cluster-key.pem"
VALID_DAYS = 825
#: renew certificates this close to expiry
RENEW_BEFORE = datetime.timedelta(days=7)


def tls_dir(home: Path | None = None) -> Path:
    """Where the cluster's CA, certificate and keys are kept."""
    return (home or nbfan_home()) / "tls"


def _paths(directory: Path) -> dict[str, str]:
    return {
        "ca_file": str(directory / CA_FILE),
        "cert": str(directory / CERT_FILE),
        "key": str(directory / KEY_FILE),
    }


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret: created 0600 under a temporary name, then renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)  # whatever the umask did
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _alt_names(hosts: Iterable[str]) -> list[Any]:
    from cryptography import x509

    names: list[Any] = []
    seen: set[str] = set()
    for host in ["localhost", "127.0.0.1", "::1", socket.gethostname(), *hosts]:
        if not host or host in seen:
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _usable(directory: Path) -> bool:
    """The files exist, the keys are private, and the certificate is not about to expire."""
    from cryptography import x509

    paths = [directory / n for n in (CA_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE)]
    if not all(p.is_file() for p in paths):
        return False
    if any((directory / n).stat().st_mode & 0o077 for n in (CA_KEY_FILE, KEY_FILE)):
        return False
    try:
        cert = x509.load_pem_x509_certificate((directory / CERT_FILE).read_bytes())
    except ValueError:
        return False
    now = datetime.datetime.now(datetime.timezone.utc)
    return cert.not_valid_after_utc - now > RENEW_BEFORE


def generate_certificates(directory: Path, hosts: Iterable[str] = ()) -> dict[str, str]:
    """Make a new CA and a certificate it signs (for scheduler, workers and clients alike),
    valid for localhost, this host's name and `hosts`. Returns the ca_file/cert/key paths."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    until = now + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key, now, until)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cluster_certificate(key, ca_key, ca_cert.subject, hosts, now, until)

    def private(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    _write_private(directory / CA_KEY_FILE, private(ca_key))
    _write_private(directory / KEY_FILE, private(key))
    _write_public(directory / CA_FILE, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_public(directory / CERT_FILE, cert.public_bytes(serialization.Encoding.PEM))
    return _paths(directory)


def _ca_certificate(ca_key: Any, now: datetime.datetime, until: datetime.datetime) -> Any:
    """The cluster's self-signed CA: it signs the one certificate every member presents."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nbfan cluster CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _cluster_certificate(
    key: Any, ca_key: Any, ca_name: Any, hosts: Iterable[str], now: datetime.datetime, until: datetime.datetime
) -> Any:
    """The certificate the scheduler, workers and clients present (server and client auth)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nbfan-cluster")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_alt_names(hosts)), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def ensure_certificates(home: Path | None = None, hosts: Iterable[str] = ()) -> dict[str, str]:
    """The cluster's certificate files under NBFAN_HOME/tls, made on first use (and again when
    missing, expiring, or with keys readable by others). Returns ca_file/cert/key paths."""
    directory = tls_dir(home)
    if _usable(directory):
        return _paths(directory)
    return generate_certificates(directory, hosts)


def security_from_files(paths: dict[str, str]) -> Any:
    """A Dask `Security` that requires TLS and presents the given certificate in every role."""
    from distributed.security import Security

    missing = [p for p in (paths.get("ca_file"), paths.get("cert"), paths.get("key")) if not p or not os.path.isfile(p)]
    if missing:
        raise InvalidError(
            f"TLS certificate files are missing: {', '.join(map(str, missing))}. Restart the cluster with "
            f"`nbfan cluster down && nbfan cluster up --tls` to make new ones, or copy them from the cluster's host."
        )
    ca, cert, key = paths["ca_file"], paths["cert"], paths["key"]
    return Security(
        require_encryption=True,
        tls_ca_file=ca,
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
    )


def server_security(home: Path | None = None) -> Any:
    """Security for the scheduler and workers of `nbfan cluster up --tls`."""
    return security_from_files(ensure_certificates(home))


def client_security(home: Path | None = None) -> Any:
    """Security for a client of a `tls://` scheduler: the certificates of the local nbfan
    cluster when NBFAN_HOME has them, else None (Dask's own `distributed.comm.tls.*` config)."""
    try:
        from nbfan.cluster.state import read_state

        state = read_state() if home is None else None
    except Exception:  # a corrupt state file: fall back to the files on disk
        state = None
    if state is not None and state.tls:
        return security_from_files(state.tls)
    paths = _paths(tls_dir(home))
    if all(os.path.isfile(p) for p in paths.values()):
        return security_from_files(paths)
    return None
