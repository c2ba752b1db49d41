"""Configuration: TOML + environment overrides, typed and checked once; secrets never shown."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from gateway.config import AGENCY_KEYS, DEFAULT_TOPICS, PER_AGENCY_TOPICS, SECTIONS, ConfigError, GatewayConfig, \
    Secret, load_config, load_signers, load_trust

REPO = Path(__file__).resolve().parents[2]
AXIS_SECRET = "axis-S3cr3t-value-do-not-log"
ENV = {"EDOC_AXIS_SECRET": AXIS_SECRET}


def minimal_toml(**extra_sections: str) -> str:
    sections = {
        "kafka": 'bootstrap_servers = "127.0.0.1:9092"',
        "axis": 'endpoint = "http://127.0.0.1:8080/adapter"\nsystemid = "00.55.W00"\n'
                'secret_env = "EDOC_AXIS_SECRET"',
        "inbound": 'trust_dir = "trust"',
        "store": 'root = "store"',
    }
    sections.update(extra_sections)
    body = "\n".join(f"[{name}]\n{text}\n" for name, text in sections.items() if text is not None)
    return body + ('\n[[agencies]]\norgan_id = "000.00.00.H55"\nname = "UBND tỉnh"\n'
                   'key = "keys/h55.key"\ncert = "keys/h55.pem"\n')


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    for d in ("trust", "store", "keys", "share"):
        (tmp_path / d).mkdir()
    for f in ("keys/h55.key", "keys/h55.pem", "keys/g22.p12"):
        (tmp_path / f).write_text("placeholder\n")
    return tmp_path


def write_config(confdir: Path, text: str) -> Path:
    path = confdir / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(confdir: Path, text: str | None = None, env: dict[str, str] | None = None) -> GatewayConfig:
    return load_config(write_config(confdir, text if text is not None else minimal_toml()),
                       {**ENV, **(env or {})})


def error_of(confdir: Path, text: str | None = None, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(confdir, text, env)
    return caught.value


# -- the whole file ----------------------------------------------------------------------------

def test_minimal_config_gets_the_documented_defaults(confdir: Path) -> None:
    config = load(confdir)
    assert (config.gateway.workers, config.gateway.shutdown_grace_seconds) == (2, 20.0)
    assert re.fullmatch(r".+-\d+", config.gateway.instance_id)
    assert (config.http.host, config.http.port) == ("127.0.0.1", 9464)
    assert (config.log.format, config.log.level) == ("auto", "info")
    assert (config.kafka.client_id, config.kafka.group_id) == ("edoc-gateway", "edoc-gateway")
    assert config.kafka.consumer_options() == {"max_poll_interval_ms": 300_000,
                                               "session_timeout_ms": 30_000}
    assert config.topics.per_agency
    assert config.topics.fixed() == {k: v for k, v in DEFAULT_TOPICS.items()
                                     if k not in PER_AGENCY_TOPICS}
    assert {k: getattr(config.topics, k) for k in PER_AGENCY_TOPICS} == PER_AGENCY_TOPICS
    assert (config.retry.max_attempts, config.retry.initial_seconds, config.retry.max_seconds,
            config.retry.total_seconds) == (10, 0.5, 60.0, 900.0)
    assert config.inbound.signature_policy == "allow-placeholder"
    assert not config.inbound.allow_sha1 and config.inbound.reject_with_status
    assert config.inbound.legacy_sha1_senders == () and config.inbound.certificate_organ_ids == ()
    assert config.axis.poll and config.axis.poll_interval_seconds == 5.0
    assert config.store.root == confdir / "store" and config.store.allowed_roots == ()
    assert config.agencies[0].key == confdir / "keys" / "h55.key"
    assert config.agency_ids == {"000.00.00.H55"} and config.source == confdir / "gateway.toml"


def test_the_architecture_document_lists_the_default_topics() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name in DEFAULT_TOPICS.values():
        assert f"`{name}`" in text, name


def test_the_example_file_loads_with_its_files_in_place(confdir: Path) -> None:
    shutil.copy(REPO / "deploy" / "gateway.example.toml", confdir / "gateway.toml")
    for f in ("keys/000.00.00.H55/key.pem", "keys/000.00.00.H55/cert.pem",
              "keys/000.00.01.H55.p12"):
        (confdir / f).parent.mkdir(parents=True, exist_ok=True)
        (confdir / f).write_text("x")
    (confdir / "keys/000.00.01.H55.password").write_text("p12-Pa55word\n")
    config = load_config(confdir / "gateway.toml",
                         {**ENV, "EDOC_GATEWAY__STORE__ROOT": str(confdir / "store")})
    assert [a.organ_id for a in config.agencies] == ["000.00.00.H55", "000.00.01.H55"]
    assert config.agencies[1].password is not None
    assert config.agencies[1].password.reveal() == "p12-Pa55word"
    assert config.axis.systemid == "00.55.W00" and config.inbound.trust_dir == confdir / "trust"


def test_every_key_is_documented_and_shown_in_the_example() -> None:
    docs = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = (REPO / "deploy" / "gateway.example.toml").read_text(encoding="utf-8")
    for section, keys in [*SECTIONS.items(), ("agencies", AGENCY_KEYS)]:
        for key in keys:
            assert re.search(rf"^#? ?{key} = ", example, re.M), f"{section}.{key} not in example"
            assert f"`{key}`" in docs, f"{section}.{key} not in docs/configuration.md"
            if section != "agencies":
                assert f"EDOC_GATEWAY__{section.upper()}__{key.upper()}" in docs, \
                    f"{section}.{key}: environment variable not in docs"


def test_a_missing_file_and_broken_toml_are_reported(confdir: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(confdir / "absent.toml", ENV)
    assert caught.value.reason == "config.file"
    err = error_of(confdir, "[kafka\nbootstrap_servers = 1")
    assert err.reason == "config.invalid" and "line 1" in err.message


# -- unknown, missing and mistyped keys --------------------------------------------------------

def test_a_misspelt_key_is_an_error_naming_it(confdir: Path) -> None:
    err = error_of(confdir, minimal_toml(gateway="worker = 4"))
    assert err.reason == "config.invalid" and err.where == "gateway.worker"
    assert err.message.startswith("gateway.worker: unknown key; known: instance_id, workers")


def test_an_unknown_section_is_an_error(confdir: Path) -> None:
    err = error_of(confdir, minimal_toml(kafak='x = 1'))
    assert err.reason == "config.invalid" and err.message.startswith("kafak: unknown section")


def test_a_missing_required_key_is_named(confdir: Path) -> None:
    err = error_of(confdir, minimal_toml(kafka='client_id = "x"'))
    assert (err.reason, err.message) == ("config.missing", "kafka.bootstrap_servers: required")


def test_no_agencies_is_an_error(confdir: Path) -> None:
    text = minimal_toml().split("[[agencies]]")[0]
    err = error_of(confdir, text)
    assert err.reason == "config.missing" and err.where == "agencies"


@pytest.mark.parametrize(("section", "line", "where", "fragment"), [
    ("gateway", 'workers = "two"', "gateway.workers", "expected an integer, got a string"),
    ("gateway", "workers = 0", "gateway.workers", "at least 1"),
    ("gateway", "workers = true", "gateway.workers", "expected an integer, got a boolean"),
    ("gateway", 'instance_id = "gw 1/a"', "gateway.instance_id", "letters, digits"),
    ("gateway", "shutdown_grace_seconds = -1", "gateway.shutdown_grace_seconds", "greater than 0"),
    ("http", 'listen = "9464"', "http.listen", "host:port"),
    ("log", 'format = "xml"', "log.format", "auto, json, console"),
    ("axis", 'endpoint = "ftp://x"\nsystemid = "00.55.W00"\nsecret_env = "EDOC_AXIS_SECRET"',
     "axis.endpoint", "http:// or https://"),
    ("retry", "initial_seconds = 5\nmax_seconds = 1", "retry.max_seconds", "initial_seconds"),
    ("inbound", 'trust_dir = "trust"\nsignature_policy = "lenient"', "inbound.signature_policy",
     "require-valid"),
    ("inbound", 'trust_dir = "trust"\nallow_sha1 = "yes"', "inbound.allow_sha1",
     "expected true or false"),
    ("inbound", 'trust_dir = "trust"\ncertificate_organ_ids = ["abc=000.00.00.H41"]',
     "inbound.certificate_organ_ids[0]", "SHA256-FINGERPRINT=OrganId"),
    ("store", 'root = "store"\nallowed_roots = "share"', "store.allowed_roots",
     "expected a list of paths"),
])
def test_wrong_values_are_invalid_with_the_key_named(confdir: Path, section: str, line: str,
                                                     where: str, fragment: str) -> None:
    err = error_of(confdir, minimal_toml(**{section: line}))
    assert err.reason == "config.invalid" and err.where == where
    assert err.message.startswith(f"{where}: ") and fragment in err.message


def test_axis_wire_dialect_is_the_reference_clients_unless_set(confdir: Path) -> None:
    assert load(confdir).axis.client_config().dialect == "reference"
    config = load(confdir, env={"EDOC_GATEWAY__AXIS__DIALECT": "standard"})
    assert config.axis.client_config().dialect == "standard"
    err = error_of(confdir, env={"EDOC_GATEWAY__AXIS__DIALECT": "java"})
    assert err.reason == "config.invalid" and err.where == "axis.dialect"


def test_choices_are_matched_without_regard_to_case(confdir: Path) -> None:
    config = load(confdir, minimal_toml(
        log='level = "DEBUG"', kafka='bootstrap_servers = "b:9093"\nsecurity_protocol = "ssl"'))
    assert config.log.level == "debug" and config.kafka.security_protocol == "SSL"


# -- files and paths ---------------------------------------------------------------------------

def test_a_missing_certificate_is_named_with_its_agency_index(confdir: Path) -> None:
    text = minimal_toml() + ('\n[[agencies]]\norgan_id = "000.00.00.G22"\nname = "VPCP"\n'
                             'key = "keys/h55.key"\ncert = "keys/g22.pem"\n')
    err = error_of(confdir, text)
    assert err.reason == "config.file"
    assert err.message == f"agencies[1].cert: file not found: {confdir / 'keys' / 'g22.pem'}"


def test_the_store_root_must_be_an_existing_directory(confdir: Path) -> None:
    err = error_of(confdir, minimal_toml(store='root = "unmounted"'))
    assert err.reason == "config.file" and "directory not found" in err.message
    err = error_of(confdir, minimal_toml(store='root = "keys/h55.key"'))
    assert err.reason == "config.file" and "not a directory" in err.message


def test_absolute_paths_are_kept_and_lists_are_resolved(confdir: Path) -> None:
    config = load(confdir, minimal_toml(
        store=f'root = "{confdir / "store"}"\nallowed_roots = ["share", "{confdir / "trust"}"]'))
    assert config.store.allowed_roots == (confdir / "share", confdir / "trust")


# -- agencies ----------------------------------------------------------------------------------

def test_duplicate_and_malformed_organ_ids_are_invalid(confdir: Path) -> None:
    dup = minimal_toml() + ('\n[[agencies]]\norgan_id = "000.00.00.H55"\nname = "again"\n'
                            'pkcs12 = "keys/g22.p12"\n')
    err = error_of(confdir, dup)
    assert err.where == "agencies[1].organ_id" and "already agencies[0]" in err.message
    bad = minimal_toml().replace('"000.00.00.H55"', '"28.22.H17"')
    err = error_of(confdir, bad)
    assert err.reason == "config.invalid" and err.where == "agencies[0].organ_id"


def test_an_agency_needs_key_and_cert_or_pkcs12_but_not_both(confdir: Path) -> None:
    err = error_of(confdir, minimal_toml().replace('cert = "keys/h55.pem"\n', ""))
    assert (err.reason, err.where) == ("config.missing", "agencies[0].cert")
    err = error_of(confdir, minimal_toml() + 'pkcs12 = "keys/g22.p12"\n')
    assert (err.reason, err.where) == ("config.invalid", "agencies[0].pkcs12")


# -- environment overrides ---------------------------------------------------------------------

def test_environment_overrides_are_parsed_to_the_key_type(confdir: Path) -> None:
    config = load(confdir, env={
        "EDOC_GATEWAY__KAFKA__BOOTSTRAP_SERVERS": "k1:9093,k2:9093",
        "EDOC_GATEWAY__GATEWAY__WORKERS": "6",
        "EDOC_GATEWAY__AXIS__POLL": "false",
        "EDOC_GATEWAY__AXIS__TIMEOUT_SECONDS": "45.5",
        "EDOC_GATEWAY__STORE__ALLOWED_ROOTS": "share, trust",
        "EDOC_GATEWAY__INBOUND__CRL_FILES": '["keys/h55.pem"]',
        "EDOC_GATEWAY__AGENCIES__0__NAME": "UBND tỉnh Thái Nguyên",
        "EDOC_GATEWAY__TOPICS__INBOUND_DOCUMENTS": "edoc.inbound.{agency}.documents",
        "OTHER_VARIABLE": "ignored",
    })
    assert config.kafka.bootstrap_servers == "k1:9093,k2:9093"
    assert config.gateway.workers == 6 and config.axis.poll is False
    assert config.axis.timeout_seconds == 45.5
    assert config.store.allowed_roots == (confdir / "share", confdir / "trust")
    assert config.inbound.crl_files == (confdir / "keys" / "h55.pem",)
    assert config.agencies[0].name == "UBND tỉnh Thái Nguyên"
    assert config.topics.per_agency


@pytest.mark.parametrize(("env", "fragment"), [
    ({"EDOC_GATEWAY__GATEWAY__WORKERS": "many"},
     "gateway.workers (from EDOC_GATEWAY__GATEWAY__WORKERS): expected an integer"),
    ({"EDOC_GATEWAY__KAFKA__BOOTSTRAP_SERVER": "x"},
     "kafka.bootstrap_server (from EDOC_GATEWAY__KAFKA__BOOTSTRAP_SERVER): unknown key"),
    ({"EDOC_GATEWAY__KAFKAA__BOOTSTRAP_SERVERS": "x"}, "EDOC_GATEWAY__KAFKAA__BOOTSTRAP_SERVERS: "
                                                       "not a known setting"),
    ({"EDOC_GATEWAY__AGENCIES__3__CERT": "x.pem"}, "there is no agencies[3]"),
    ({"EDOC_GATEWAY__AXIS__POLL": "perhaps"}, "axis.poll (from EDOC_GATEWAY__AXIS__POLL): "
                                              "expected true or false"),
    ({"EDOC_GATEWAY__AGENCIES__0__KEY": "keys/missing.key"},
     "agencies[0].key (from EDOC_GATEWAY__AGENCIES__0__KEY): file not found"),
])
def test_bad_environment_overrides_name_the_variable(confdir: Path, env: dict[str, str],
                                                     fragment: str) -> None:
    err = error_of(confdir, env=env)
    assert fragment in err.message


# -- secrets -----------------------------------------------------------------------------------

def test_an_inline_secret_is_refused_without_quoting_it(confdir: Path) -> None:
    text = minimal_toml(axis='endpoint = "http://a/b"\nsystemid = "00.55.W00"\n'
                             f'secret = "{AXIS_SECRET}"')
    err = error_of(confdir, text)
    assert err.reason == "config.invalid" and err.where == "axis.secret"
    assert "secret_env" in err.message and AXIS_SECRET not in str(err)
    err = error_of(confdir, env={"EDOC_GATEWAY__AXIS__SECRET": AXIS_SECRET})
    assert err.where == "axis.secret" and AXIS_SECRET not in str(err)


def test_secret_from_file_and_environment(confdir: Path) -> None:
    (confdir / "axis.secret").write_text(AXIS_SECRET + "\n")
    config = load(confdir, minimal_toml(
        axis='endpoint = "https://axis.local/x"\nsystemid = "00.55.W00"\n'
             'secret_file = "axis.secret"',
        kafka='bootstrap_servers = "b:9092"\nsecurity_protocol = "SASL_SSL"\n'
              'sasl_mechanism = "scram-sha-512"\nsasl_username = "gw"\n'
              'sasl_password_env = "KAFKA_PW"'), env={"KAFKA_PW": "kafka-pw-value"})
    assert config.axis.secret.reveal() == AXIS_SECRET
    assert config.axis.client_config().secret == AXIS_SECRET
    settings = config.kafka.settings()
    assert settings.sasl_password == "kafka-pw-value" and settings.sasl_mechanism == "SCRAM-SHA-512"
    assert repr(config.kafka.sasl_password) == "Secret(from env KAFKA_PW)"


def test_secrets_never_appear_in_repr_or_summary(confdir: Path) -> None:
    config = load(confdir)
    assert AXIS_SECRET not in repr(config) and AXIS_SECRET not in str(config)
    summary = json.dumps(config.summary(), ensure_ascii=False)
    assert AXIS_SECRET not in summary and "Secret(from env EDOC_AXIS_SECRET)" in summary
    clone = pickle.loads(pickle.dumps(config))
    assert clone == config and clone.axis.secret.reveal() == AXIS_SECRET


@pytest.mark.parametrize(("axis_secret", "env", "reason", "fragment"), [
    ('secret_env = "NOT_SET_ANYWHERE"', {}, "config.missing",
     "axis.secret_env: environment variable NOT_SET_ANYWHERE is not set"),
    ('secret_env = "EMPTY_SECRET"', {"EMPTY_SECRET": "  "}, "config.invalid", "is empty"),
    ("", {}, "config.missing", "axis.secret_env: the secret is required"),
    ('secret_env = "A"\nsecret_file = "x"', {"A": "v"}, "config.file", "axis.secret_file"),
    ('secret_env = "EDOC_AXIS_SECRET"\nsecret_file = "keys/h55.key"', {}, "config.invalid",
     "not both"),
    ('secret_env = "s3cr3t value!"', {}, "config.invalid", "name of an environment variable"),
])
def test_secret_sources_are_checked(confdir: Path, axis_secret: str, env: dict[str, str],
                                    reason: str, fragment: str) -> None:
    text = minimal_toml(axis=f'endpoint = "http://a/b"\nsystemid = "00.55.W00"\n{axis_secret}')
    err = error_of(confdir, text, env)
    assert err.reason == reason and fragment in err.message
    assert "s3cr3t value!" not in str(err)


def test_sasl_without_a_password_names_the_password_key(confdir: Path) -> None:
    err = error_of(confdir, minimal_toml(
        kafka='bootstrap_servers = "b:9092"\nsecurity_protocol = "SASL_PLAINTEXT"\n'
              'sasl_mechanism = "PLAIN"\nsasl_username = "gw"'))
    assert (err.reason, err.where) == ("config.invalid", "kafka.sasl_password_env")


def test_secret_equality_does_not_depend_on_repr() -> None:
    assert Secret("a", "env X") == Secret("a", "env X")
    assert Secret("a", "env X") != Secret("b", "env X")
    assert str(Secret("a", "env X")) == "Secret(from env X)"


# -- topics ------------------------------------------------------------------------------------

def test_inbound_topics_can_be_routed_per_agency(confdir: Path) -> None:
    config = load(confdir, minimal_toml(topics='per_agency = false\n'
                                               'inbound_documents = "edoc.inbound.{agency}.documents"'))
    assert config.topics.inbound_topic("documents", "000.00.00.H55") == \
        "edoc.inbound.000.00.00.H55.documents"
    assert config.topics.inbound_topic("receipts", "000.00.00.H55") == "edoc.inbound.receipts"
    assert config.inbound_topics() == {"edoc.inbound.000.00.00.H55.documents": "documents",
                                       "edoc.inbound.receipts": "receipts"}
    assert "inbound_documents" not in config.topics.fixed()
    with pytest.raises(ConfigError):
        config.topics.inbound_topic("documents", "H55 242")


def test_every_agency_gets_topics_of_its_own_by_default(confdir: Path) -> None:
    config = load(confdir)
    h55 = "000.00.00.H55"
    assert config.topics.outbound_topic("documents", h55) == "edoc.outbound.000.00.00.H55.documents"
    assert config.topics.outbound_topic("receipts", h55) == "edoc.outbound.000.00.00.H55.receipts"
    assert config.topics.delivery_topic(h55) == "edoc.delivery.000.00.00.H55"
    assert config.outbound_topics() == {
        "edoc.outbound.000.00.00.H55.documents": ("documents", h55),
        "edoc.outbound.000.00.00.H55.receipts": ("receipts", h55)}
    assert config.topic_agency("edoc.outbound.000.00.00.H55.receipts") == h55
    assert config.principals() == {"User:000.00.00.H55": (h55,)}


def test_the_shared_layout_is_kept_for_a_lab(confdir: Path) -> None:
    config = load(confdir, minimal_toml(topics="per_agency = false"))
    assert not config.topics.per_agency
    assert config.topics.fixed() == DEFAULT_TOPICS
    assert config.outbound_topics() == {"edoc.outbound.documents": ("documents", None),
                                        "edoc.outbound.receipts": ("receipts", None)}
    assert config.topic_agency("edoc.outbound.documents") is None


@pytest.mark.parametrize("line", [
    'outbound_documents = "edoc.outbound.documents"',
    'delivery = "edoc.delivery"',
    'outbound_receipts = "edoc.{agency}.outbound.{agency}"',
])
def test_per_agency_topics_must_be_templates(confdir: Path, line: str) -> None:
    err = error_of(confdir, minimal_toml(topics=line))
    assert err.reason == "config.invalid" and err.where.startswith("topics.")
    assert "{agency}" in err.message


def test_a_grant_lets_one_principal_act_for_several_agencies(confdir: Path) -> None:
    text = minimal_toml() + ('\n[[agencies]]\norgan_id = "000.00.02.H55"\nname = "Sở Nội vụ"\n'
                             'key = "keys/h55.key"\ncert = "keys/h55.pem"\n'
                             'principal = "User:snv-h55"\n'
                             '\n[[grants]]\nprincipal = "User:vendor-x"\n'
                             'agencies = ["000.00.00.H55", "000.00.02.H55"]\n')
    config = load(confdir, text)
    assert config.principals() == {"User:000.00.00.H55": ("000.00.00.H55",),
                                   "User:snv-h55": ("000.00.02.H55",),
                                   "User:vendor-x": ("000.00.00.H55", "000.00.02.H55")}


@pytest.mark.parametrize(("extra", "where"), [
    ('\n[[grants]]\nprincipal = "User:vendor-x"\nagencies = ["000.00.09.H55"]\n',
     "grants[0].agencies[0]"),
    ('\n[[grants]]\nprincipal = "vendor-x"\nagencies = ["000.00.00.H55"]\n',
     "grants[0].principal"),
    ('\n[[grants]]\nprincipal = "User:v"\nagencies = []\n', "grants[0].agencies"),
    ('\n[[agencies]]\norgan_id = "000.00.02.H55"\nname = "Sở"\nkey = "keys/h55.key"\n'
     'cert = "keys/h55.pem"\nprincipal = "User:000.00.00.H55"\n', "agencies[1].principal"),
])
def test_a_principal_reaches_several_agencies_only_through_an_explicit_grant(
        confdir: Path, extra: str, where: str) -> None:
    err = error_of(confdir, minimal_toml() + extra)
    assert err.reason == "config.invalid" and err.where == where


@pytest.mark.parametrize("line", [
    'audit = "edoc.{agency}.audit"',
    'delivery = "edoc delivery"',
    'delivery = "edoc.audit"',
    'inbound_receipts = "edoc.inbound.{agency}/receipts"',
])
def test_bad_topic_names_are_invalid(confdir: Path, line: str) -> None:
    err = error_of(confdir, minimal_toml(topics=line))
    assert err.reason == "config.invalid" and err.where.startswith("topics")


# -- what the other parts get ------------------------------------------------------------------

def test_axis_and_kafka_settings_carry_the_configured_values(confdir: Path) -> None:
    config = load(confdir, minimal_toml(
        axis='endpoint = "https://axis.local/x"\nsystemid = "00.55.W00"\n'
             'secret_env = "EDOC_AXIS_SECRET"\nconnect_timeout_seconds = 3\ntimeout_seconds = 40\n'
             'ca_bundle = "keys/h55.pem"\nmax_connections = 4',
        kafka='bootstrap_servers = "b:9092"\nrequest_timeout_seconds = 12\n'
              'session_timeout_seconds = 10'))
    axis = config.axis.client_config()
    assert (axis.endpoint, axis.systemid, axis.connect_timeout, axis.total_timeout,
            axis.ca_file, axis.pool_size) == ("https://axis.local/x", "00.55.W00", 3.0, 40.0,
                                              str(confdir / "keys" / "h55.pem"), 4)
    settings = config.kafka.settings()
    assert settings.request_timeout_ms == 12_000 and settings.bootstrap_servers == "b:9092"
    assert config.kafka.consumer_options()["session_timeout_ms"] == 10_000


@pytest.mark.parametrize(("policy", "accepted"), [
    ("require-valid", {"valid"}),
    ("allow-placeholder", {"valid", "placeholder"}),
    ("allow-unsigned", {"valid", "placeholder", "absent"}),
])
def test_signature_policy_decides_which_verdicts_pass(confdir: Path, policy: str,
                                                      accepted: set[str]) -> None:
    config = load(confdir, minimal_toml(inbound=f'trust_dir = "trust"\nsignature_policy = "{policy}"'))
    statuses = {"valid", "placeholder", "absent", "invalid"}
    assert {s for s in statuses if config.inbound.accepts(s)} == accepted


def test_http_listen_accepts_ipv6(confdir: Path) -> None:
    config = load(confdir, minimal_toml(http='listen = "[::1]:9500"'))
    assert (config.http.host, config.http.port) == ("::1", 9500)


# -- keys and trust, with a real test PKI ------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from edxml.pki import init_test_pki

    return init_test_pki(tmp_path_factory.mktemp("pki"))


def pki_config(confdir: Path, pki, *, extra_agency: str = "") -> str:  # type: ignore[no-untyped-def]
    h55 = pki.agencies["000.00.00.H55"]
    return minimal_toml(inbound=f'trust_dir = "{pki.trust_dir}"\ncrl_files = ["{pki.crl}"]').replace(
        'key = "keys/h55.key"\ncert = "keys/h55.pem"',
        f'key = "{h55.key}"\ncert = "{h55.cert}"\nchain = "{h55.chain}"') + extra_agency


def test_signers_and_trust_load_from_the_configured_files(confdir: Path, pki) -> None:  # type: ignore[no-untyped-def]
    g22 = pki.material.agencies["000.00.00.G22"]
    data = pkcs12.serialize_key_and_certificates(
        b"g22", g22.key, g22.certificate, list(g22.chain),
        serialization.BestAvailableEncryption(b"p12-password"))
    (confdir / "keys" / "g22.p12").write_bytes(data)
    extra = ('\n[[agencies]]\norgan_id = "000.00.00.G22"\nname = "VPCP"\n'
             'pkcs12 = "keys/g22.p12"\npassword_env = "G22_PW"\n')
    config = load(confdir, pki_config(confdir, pki, extra_agency=extra), {"G22_PW": "p12-password"})
    signers = load_signers(config)
    assert set(signers) == {"000.00.00.H55", "000.00.00.G22"}
    assert signers["000.00.00.G22"].certificate == g22.certificate
    assert len(signers["000.00.00.H55"].chain) == 1
    trust = load_trust(config)
    assert len(trust.roots) == 1 and len(trust.intermediates) == 1


def test_key_failures_name_every_agency_and_no_password(confdir: Path, pki) -> None:  # type: ignore[no-untyped-def]
    g22 = pki.material.agencies["000.00.00.G22"]
    data = pkcs12.serialize_key_and_certificates(
        b"g22", g22.key, g22.certificate, None,
        serialization.BestAvailableEncryption(b"right-password"))
    (confdir / "keys" / "g22.p12").write_bytes(data)
    other = pki.agencies["000.00.00.G22"]
    text = pki_config(confdir, pki, extra_agency=(
        '\n[[agencies]]\norgan_id = "000.00.00.G22"\nname = "VPCP"\n'
        'pkcs12 = "keys/g22.p12"\npassword_env = "G22_PW"\n'))
    text = text.replace(f'key = "{pki.agencies["000.00.00.H55"].key}"', f'key = "{other.key}"')
    config = load(confdir, text, {"G22_PW": "wrong-password-value"})
    with pytest.raises(ConfigError) as caught:
        load_signers(config)
    message = caught.value.message
    assert caught.value.reason == "config.file"
    assert "agencies[0] (000.00.00.H55, UBND tỉnh): edxml.signature.key_mismatch" in message
    assert "agencies[1] (000.00.00.G22, VPCP): edxml.signature.key_unreadable" in message
    assert "wrong-password-value" not in message


def test_a_trust_dir_without_a_root_is_refused(confdir: Path, pki) -> None:  # type: ignore[no-untyped-def]
    shutil.copy(pki.ca_cert, confdir / "trust" / "ca.pem")
    config = load(confdir)
    with pytest.raises(ConfigError) as caught:
        load_trust(config)
    assert caught.value.where == "inbound.trust_dir" and "no self-signed root" in caught.value.message


# -- attachment roots --------------------------------------------------------------------------

TWO_AGENCIES = ('\n[[agencies]]\norgan_id = "000.00.02.H55"\nname = "Sở Nội vụ"\n'
                'pkcs12 = "keys/g22.p12"\n')


def test_each_agency_gets_its_own_subdirectory_of_the_shared_roots(confdir: Path) -> None:
    config = load(confdir, minimal_toml(store='root = "store"\nallowed_roots = ["share"]')
                  + TWO_AGENCIES)
    assert config.attachment_roots() == {
        "000.00.00.H55": (confdir / "share" / "000.00.00.H55",),
        "000.00.02.H55": (confdir / "share" / "000.00.02.H55",)}
    assert confdir / "keys" / "h55.key" in config.secret_files


def test_explicit_attachment_roots_replace_the_default(confdir: Path) -> None:
    (confdir / "exports" / "h55").mkdir(parents=True)
    config = load(confdir, minimal_toml(store='root = "store"\nallowed_roots = ["share"]')
                  + 'attachment_roots = ["exports/h55"]\n' + TWO_AGENCIES)
    assert config.agencies[0].attachment_roots == (confdir / "exports" / "h55",)
    assert config.agencies[1].attachment_roots == (confdir / "share" / "000.00.02.H55",)


@pytest.mark.parametrize("roots, clash", [
    ('["share"]', "000.00.02.H55"),          # contains the other agency's default root
    ('["store/objects"]', "store root"),     # inside the store: received files, the archive
    ('["."]', "store root"),                 # contains everything
    ('["keys"]', "key directory"),           # holds signing keys
    ('["keys/sub"]', "key directory"),       # inside the key directory
])
def test_attachment_roots_that_overlap_others_the_store_or_the_keys_are_refused(
        confdir: Path, roots: str, clash: str) -> None:
    for d in ("store/objects", "keys/sub"):
        (confdir / d).mkdir(parents=True, exist_ok=True)
    err = error_of(confdir, minimal_toml(store='root = "store"\nallowed_roots = ["share"]')
                   + f"attachment_roots = {roots}\n" + TWO_AGENCIES)
    assert (err.reason, err.where) == ("config.invalid", "agencies[0].attachment_roots")
    assert clash in err.message


def test_an_attachment_root_may_not_contain_a_secret_file(confdir: Path) -> None:
    (confdir / "share" / "secret").write_text("axis secret\n")
    text = minimal_toml(store='root = "store"',
                        axis='endpoint = "http://127.0.0.1:8080/adapter"\nsystemid = "00.55.W00"\n'
                             'secret_file = "share/secret"')
    err = error_of(confdir, text + 'attachment_roots = ["share"]\n')
    assert (err.reason, err.where) == ("config.invalid", "agencies[0].attachment_roots")
    assert "secret" in err.message and AXIS_SECRET not in err.message


def test_legacy_sha1_senders_and_certificate_mapping_reach_the_verification_policy(confdir: Path) -> None:
    fingerprint = "AB:" * 31 + "AB"
    config = load(confdir, minimal_toml(inbound='trust_dir = "trust"\nlegacy_sha1_senders = ["000.00.00.H41"]\n'
                                                f'certificate_organ_ids = ["{fingerprint}=000.00.00.H14"]'))
    policy = config.inbound.verification_policy()
    assert not policy.allow_sha1 and policy.legacy_sha1_senders == {"000.00.00.H41"}
    assert policy.certificate_organ_ids == {"ab" * 32: "000.00.00.H14"}
