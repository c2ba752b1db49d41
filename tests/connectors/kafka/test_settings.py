"""Kafka settings, error translation and unreachable brokers (no running broker needed)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from pathlib import Path

import pytest
from aiokafka import errors as kafka_errors
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors.kafka import REASONS, EventProducer, KafkaConnectorError, KafkaSettings, \
    translate_error


def test_from_env_reads_bootstrap_and_sasl_settings() -> None:
    settings = KafkaSettings.from_env({
        "KAFKA_BOOTSTRAP_SERVERS": "b1:9093,b2:9093", "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "KAFKA_SASL_MECHANISM": "scram-sha-512", "KAFKA_SASL_USERNAME": "gateway",
        "KAFKA_SASL_PASSWORD": "s3cret-value", "KAFKA_CLIENT_ID": "edoc-tinh"})
    assert settings.bootstrap_servers == "b1:9093,b2:9093"
    assert settings.security_protocol == "SASL_SSL"
    assert settings.sasl_mechanism == "SCRAM-SHA-512"
    assert settings.client_id == "edoc-tinh"
    assert "s3cret-value" not in repr(settings)


def test_from_env_without_bootstrap_is_a_config_error() -> None:
    with pytest.raises(KafkaConnectorError) as caught:
        KafkaSettings.from_env({})
    assert caught.value.reason == "kafka.config"


@pytest.mark.parametrize("overrides", [
    {"security_protocol": "TLS"},
    {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
    {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u",
     "sasl_password": "p"},
    {"ssl_certfile": "client.pem"},
    {"bootstrap_servers": " "},
])
def test_inconsistent_settings_are_config_errors(overrides: dict[str, str]) -> None:
    fields = {"bootstrap_servers": "localhost:9092", **overrides}
    with pytest.raises(KafkaConnectorError) as caught:
        KafkaSettings(**fields)
    assert caught.value.reason == "kafka.config"


def test_sasl_credentials_reach_the_client_arguments() -> None:
    kwargs = KafkaSettings("b:9092", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                           sasl_username="u", sasl_password="p").client_kwargs()
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"],
            kwargs["sasl_plain_password"]) == ("PLAIN", "u", "p")
    assert "ssl_context" not in kwargs


def _write_ca(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test kafka CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_ssl_settings_build_a_verifying_tls_context(tmp_path: Path) -> None:
    _write_ca(tmp_path / "ca.pem")
    kwargs = KafkaSettings("b:9093", security_protocol="SSL",
                           ssl_cafile=str(tmp_path / "ca.pem")).client_kwargs()
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(c["subject"] == ((("commonName", "test kafka CA"),),)
               for c in context.get_ca_certs())


def test_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(KafkaConnectorError) as caught:
        KafkaSettings("b:9093", security_protocol="SSL",
                      ssl_cafile=str(tmp_path / "missing.pem")).client_kwargs()
    assert caught.value.reason == "kafka.config"


@pytest.mark.parametrize("exc,reason,transient", [
    (kafka_errors.KafkaConnectionError("refused"), "kafka.unavailable", True),
    (kafka_errors.KafkaTimeoutError(), "kafka.unavailable", True),
    (kafka_errors.NotLeaderForPartitionError(), "kafka.unavailable", True),
    (kafka_errors.NotEnoughReplicasError(), "kafka.unavailable", True),
    (kafka_errors.ProducerFenced(), "kafka.fenced", False),
    (kafka_errors.CommitFailedError("rebalanced"), "kafka.commit.rebalanced", False),
    (kafka_errors.IllegalStateError("Partition is not assigned"), "kafka.commit.rebalanced",
     False),
    (kafka_errors.TopicAuthorizationFailedError(), "kafka.auth", False),
    (kafka_errors.SaslAuthenticationFailed(), "kafka.auth", False),
    (kafka_errors.MessageSizeTooLargeError(), "kafka.rejected", False),
    (kafka_errors.PolicyViolationError(), "kafka.rejected", False),
    (kafka_errors.UnsupportedCodecError(), "kafka.error", False),
])
def test_client_errors_translate_to_stable_reasons(exc: BaseException, reason: str,
                                                   transient: bool) -> None:
    error = translate_error(exc, "send to t")
    assert (error.reason, error.transient) == (reason, transient)
    assert error.reason in REASONS
    assert error.message.startswith("send to t: ")


async def test_unreachable_broker_is_a_transient_error() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = KafkaSettings(f"127.0.0.1:{port}", request_timeout_ms=2000)
    with pytest.raises(KafkaConnectorError) as caught:
        await EventProducer(settings).start()
    assert caught.value.reason == "kafka.unavailable"
    assert caught.value.transient is True
