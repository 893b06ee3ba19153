"""Throw-away certificate authorities and certificates for TLS tests, made with openssl."""

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key."""

    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def authority(folder: Path, name: str) -> Pair:
    """Make a self-signed CA."""
    folder.mkdir(parents=True, exist_ok=True)
    pair = Pair(folder / f"{name}.crt", folder / f"{name}.key")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", str(pair.key), "-out", str(pair.cert))
    return pair


def issue(ca: Pair, folder: Path, name: str, server: bool = False, days: int = 2) -> Pair:
    """Make a certificate signed by `ca`: for 127.0.0.1 when `server`; days < 0 is expired."""
    pair = Pair(folder / f"{name}.crt", folder / f"{name}.key")
    csr, ext = folder / f"{name}.csr", folder / f"{name}.ext"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", str(pair.key), "-out", str(csr))
    usage = "serverAuth" if server else "clientAuth"
    ext.write_text(f"extendedKeyUsage={usage}\n"
                   + ("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server else ""))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-CAcreateserial", "-days", str(days), "-extfile", str(ext), "-out", str(pair.cert))
    return pair
