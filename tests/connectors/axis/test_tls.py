"""TLS to the axis: a configurable CA bundle and an optional client certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from connectors.axis import AxisClient, AxisError
from connectors.axis.simulator import SimulatorConfig, serve

from .conftest import TN_SYSTEM, client_config


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, issuer_key, issuer_name, *, ca: bool, usage=None, san=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(issuer_name or _name(subject)).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False), critical=True)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def _write(path: Path, key, cert) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return path


@pytest.fixture
def pki(tmp_path):
    ca_key, ca_cert = _issue("Test axis CA", None, None, ca=True)
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server = _write(tmp_path / "server.pem", *_issue(
        "127.0.0.1", ca_key, ca_cert.subject, ca=False, usage=ExtendedKeyUsageOID.SERVER_AUTH,
        san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]))
    client = _write(tmp_path / "client.pem", *_issue(
        TN_SYSTEM, ca_key, ca_cert.subject, ca=False, usage=ExtendedKeyUsageOID.CLIENT_AUTH))
    return {"ca": str(tmp_path / "ca.pem"), "server": str(server), "client": str(client)}


@pytest.fixture
async def tls_sim(tmp_path, pki, secrets_by_system):
    running = await serve(SimulatorConfig(
        db_path=tmp_path / "tls.sqlite", clients=secrets_by_system, tls_cert=pki["server"],
        tls_client_ca=pki["ca"], shutdown_timeout=0.5))
    try:
        yield running
    finally:
        await running.close()


async def test_client_with_ca_bundle_and_certificate_talks_https(tls_sim, pki, secrets_by_system):
    assert tls_sim.url.startswith("https://127.0.0.1:")
    config = client_config(tls_sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM],
                           ca_file=pki["ca"], client_cert=pki["client"])
    async with AxisClient(config) as client:
        assert await client.count_receive_edoc() == 0


async def test_untrusted_server_certificate_is_a_permanent_tls_error(tls_sim, pki,
                                                                     secrets_by_system):
    config = client_config(tls_sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM],
                           client_cert=pki["client"])        # system CA store only
    async with AxisClient(config) as client:
        with pytest.raises(AxisError) as info:
            await client.count_receive_edoc()
    e = info.value.__cause__
    print("CAUSE", type(e), repr(e), type(e.__cause__), repr(e.__cause__), repr(e.__context__), getattr(e, "os_error", None))
    assert (info.value.reason, info.value.transient) == ("axis.tls", False)


async def test_missing_client_certificate_is_refused(tls_sim, pki, secrets_by_system):
    config = client_config(tls_sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM], ca_file=pki["ca"])
    async with AxisClient(config) as client:
        with pytest.raises(AxisError) as info:
            await client.count_receive_edoc()
    # Under TLS 1.3 the server refuses a missing client certificate after the handshake, so the
    # client only sees the connection close: it cannot tell this from a network reset.
    assert info.value.reason == "axis.connection_lost"
