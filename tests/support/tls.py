"""A throwaway certificate authority and a server certificate it signed (SAN ``localhost``,
``127.0.0.1``), made with ``cryptography`` and written to a temporary directory, for
``nopass serve --ssl-certfile/--ssl-keyfile`` in tests. Clients trust ``ca`` (httpx
``verify=``, ``REQUESTS_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS``)."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_PASSWORD = "throwaway-key-password"  # of the encrypted copy of the test key


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA's certificate: the bundle clients trust
    cert: Path  # the server's certificate (PEM)
    key: Path  # its private key (PEM, unencrypted)
    encrypted_key: Path  # the same key, encrypted with ``KEY_PASSWORD``
    other_key: Path  # a key that does not match ``cert``
    combined: Path  # certificate and key in one file

    def trusting(self) -> ssl.SSLContext:
        """A client context that trusts the CA (httpx ``verify=``)."""
        return ssl.create_default_context(cafile=str(self.ca))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey, password: str | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA and a server certificate for ``localhost`` and ``127.0.0.1``, in ``directory``."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("nopass test CA"))
        .issuer_name(_name("nopass test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(
        ca=directory / "ca.pem",
        cert=directory / "server.pem",
        key=directory / "server-key.pem",
        encrypted_key=directory / "server-key-encrypted.pem",
        other_key=directory / "other-key.pem",
        combined=directory / "server-combined.pem",
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert_pem)
    files.key.write_bytes(_pem_key(key))
    files.encrypted_key.write_bytes(_pem_key(key, KEY_PASSWORD))
    files.other_key.write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
    files.combined.write_bytes(cert_pem + _pem_key(key))
    return files


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """One CA and server certificate for the whole run."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def ca_bundle(tls_files: TlsFiles) -> Path:
    """The path of the CA bundle that trusts ``tls_files.cert``."""
    return tls_files.ca
