"""The hostile-input campaign (tests/campaign/make_campaign.py).

Without Kafka: every inbound case read by the gateway's worker function, and every outbound case
checked, resolved and built as the outbound pipeline does, ends in its expected reason. With
Kafka: a deterministic sample runs against real gateway processes; the whole campaign is
`-m slow` (or `python -m tests.campaign.run`).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from connectors.cloudevents import CloudEvent, EnvelopeError, KafkaRecord
from connectors.store import FileStore
from edxml.errors import GatewayError
from edxml.pki import init_test_pki
from edxml.signature import Signer
from gateway import admission, events, work
from tests.campaign import make_campaign as mc

AGENCIES = (("000.00.00.H55", "UBND tỉnh Thái Nguyên"), ("000.00.02.H55", "Sở Nội vụ"),
            ("000.00.00.H41", "UBND tỉnh Nghệ An"))
_PKI_DIR = Path(tempfile.mkdtemp(prefix="campaign-pki-"))
_PKI = init_test_pki(_PKI_DIR, agencies=AGENCIES)


def _signer(files) -> Signer:
    return Signer.from_pem(files.key, files.cert, chain_path=files.chain)


CREDS = mc.Credentials(_signer(_PKI.agencies[mc.SENDER]), _signer(_PKI.agencies[mc.RECIPIENT]),
                       _signer(_PKI.expired), _signer(_PKI.revoked), _signer(_PKI.untrusted),
                       datetime.now(timezone.utc))
INBOUND = mc.inbound_cases(CREDS)


def _param(case, **kw):
    marks = [pytest.mark.xfail(strict=True, reason=case.known_bug)] if case.known_bug else []
    return pytest.param(case, id=case.name, marks=marks)


def test_the_campaign_is_large_enough_and_covers_every_family() -> None:
    families = {c.family.split("/")[0] for c in INBOUND}
    assert len(INBOUND) >= 300 and families == {"xml", "signature", "attachment", "encoding",
                                                "identifier"}
    outbound = mc.outbound_cases(mc.OutboundEnv(*_dirs(), "count"))
    assert len(outbound) >= 200


def _dirs() -> tuple[Path, Path]:
    base = Path(tempfile.mkdtemp(prefix="campaign-out-"))
    (base / "inbox").mkdir()
    (base / "outside").mkdir()
    return base / "inbox", base / "outside"


@pytest.fixture(scope="module")
def worker() -> None:
    work.init_worker(work.WorkerSetup(keys=(), trust_paths=(str(_PKI.trust_dir),),
                                      crl_files=(str(_PKI.crl),), allow_sha1=False))


# The axis's list entry of every campaign case: sent by SENDER, delivered to RECIPIENT.
_ITEM = SimpleNamespace(from_code=mc.SENDER, to_code=mc.RECIPIENT)


def _gateway_outcome(result: dict) -> str:
    """The refusal order of gateway.inbound.InboundPoller._refusal under require-valid."""
    if "error" in result:
        return result["error"]["reason"]
    binding = admission.binding_refusal(_ITEM, result, kind=result["kind"])
    if binding is not None:
        return binding.reason
    errors = [a["error"]["reason"] for a in result["attachments"] if a["error"]]
    if errors:
        return errors[0]
    sig = result["signature"]
    if sig["status"] == "invalid":
        return sig["reason"]
    signer = admission.signer_refusal(result)
    if signer is not None:
        return signer.reason
    return mc.PUBLISHED if sig["status"] == "valid" else "inbound.signature_required"


@pytest.mark.parametrize("case", [_param(c) for c in INBOUND if not c.expect.startswith("axis:")])
def test_inbound_case_read_by_the_worker_ends_in_its_expected_reason(case, worker,
                                                                     tmp_path) -> None:
    package = tmp_path / "package.edxml"
    package.write_bytes(case.data)
    result = work.read_and_verify(str(package), str(tmp_path / "attachments"))
    assert _gateway_outcome(result) == case.expect
    leftovers = [p for p in (tmp_path / "attachments").rglob("*")] if "error" in result else []
    assert leftovers == []


_OUT_DIRS = _dirs()
OUTBOUND = mc.outbound_cases(mc.OutboundEnv(*_OUT_DIRS, "unit"))
_KNOWN = {a["code"] for a in json.loads((Path(__file__).resolve().parents[2] / "connectors" /
          "axis" / "simulator" / "seed_agencies.json").read_text(encoding="utf-8"))["agencies"]}


@pytest.fixture(scope="module")
def signing_worker() -> None:
    work.init_worker(work.WorkerSetup(keys=tuple(
        work.KeySpec(o, key=str(f.key), cert=str(f.cert)) for o, f in _PKI.agencies.items()),
        trust_paths=(str(_PKI.trust_dir),), crl_files=(str(_PKI.crl),)))


@pytest.mark.parametrize("case", [_param(c) for c in OUTBOUND])
def test_outbound_case_checked_and_built_ends_in_its_expected_reason(case, signing_worker,
                                                                      tmp_path) -> None:
    store = FileStore(tmp_path / "store", [_OUT_DIRS[0]])
    try:
        event = CloudEvent.from_record(KafkaRecord(b"k", case.value, case.headers))
        item = events.parse_incoming(event, agencies={"000.00.00.H55", "000.00.02.H55"},
                                     known_recipient=lambda r: r in _KNOWN)
        paths = [store.resolve(ref) for ref in item.attachments]
        built = work.build_and_sign(item.sender, item.package_dict(
            paths, trace_organ_id=item.sender, now=datetime.now(timezone.utc)),
            str(tmp_path / "out.edxml"))
        got = built["error"]["reason"] if "error" in built else mc.DELIVERED
    except EnvelopeError as exc:
        got = exc.reason
        assert not case.delivery_failed
    except GatewayError as exc:
        got = exc.reason
    assert got == case.expect


# --- against running gateways -------------------------------------------------------------------

def _sample(items: list, n: int) -> list:
    step = max(1, len(items) // n)
    return items[::step][:n]


@pytest.fixture(scope="module")
def lab(kafka_bootstrap, tmp_path_factory):
    from tests.campaign.run import start_lab

    lab = start_lab(tmp_path_factory.mktemp("campaign-lab"), kafka_bootstrap)
    yield lab
    lab.stop()


def _assert_clean(report) -> None:
    table = report.table()
    assert report.mismatches() == [], json.dumps(table["mismatches"], ensure_ascii=False, indent=1)
    assert report.escaped_files == [] and report.unexpected_files == []
    assert report.served_after
    assert report.rejections_checked > 0


@pytest.mark.kafka
def test_a_sample_of_the_campaign_ends_as_expected_against_running_gateways(lab) -> None:
    from tests.campaign.run import campaign, credentials

    inbound = [c for c in mc.inbound_cases(credentials(lab)) if not c.known_bug]
    env = mc.OutboundEnv(lab.inbox(lab.provinces[0], mc.SENDER), _dirs()[1], "sample")
    outbound = [c for c in mc.outbound_cases(env) if c.live and not c.known_bug]
    inbound = _sample([c for c in inbound if c.family.startswith("xml")], 20) + \
        _sample([c for c in inbound if not c.family.startswith("xml")], 40)
    report = asyncio.run(campaign(lab, inbound=inbound, outbound=_sample(outbound, 40)))
    _assert_clean(report)


@pytest.mark.slow
@pytest.mark.kafka
def test_the_whole_campaign_ends_as_expected_against_running_gateways(lab) -> None:
    from tests.campaign.run import campaign

    report = asyncio.run(campaign(lab))
    _assert_clean(report)
