"""build → write → read gives back the same model, for any model (Vietnamese text included)."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from edxml.jsonform import package_from_dict, package_to_dict, without_file_facts
from edxml.model import Business
from edxml.reader import read_package_bytes
from edxml.writer import package_bytes

from tests.edxml import strategies

_SRC = Path(tempfile.mkdtemp(prefix="edxml-hypothesis-"))
_SETTINGS = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _as_written(pkg):
    """Bussiness is always written: a package without one reads back as a new document (0)."""
    trace = pkg.trace_header_list
    if trace.business is not None:
        return pkg
    return replace(pkg, trace_header_list=replace(trace, business=Business()))


@_SETTINGS
@given(strategies.document_packages(_SRC))
def test_document_package_round_trips_through_bytes(pkg):
    data = package_bytes(pkg)
    with tempfile.TemporaryDirectory() as out:
        result = read_package_bytes(data, out)
        assert without_file_facts(result.package) == without_file_facts(_as_written(pkg))
        for written, report in zip(pkg.attachments, result.attachments):
            assert report.ok
            content = written.path.read_bytes()
            assert report.attachment.path.read_bytes() == content
            assert report.attachment.sha256 == hashlib.sha256(content).hexdigest()
            assert report.attachment.size == len(content)


@_SETTINGS
@given(strategies.status_packages)
def test_status_package_round_trips_through_bytes(pkg):
    result = read_package_bytes(package_bytes(pkg))
    assert result.kind == "status"
    assert result.package == pkg


@_SETTINGS
@given(strategies.document_packages(_SRC))
def test_document_package_round_trips_through_json(pkg):
    assert package_from_dict(package_to_dict(pkg)) == pkg


@_SETTINGS
@given(strategies.status_packages)
def test_status_package_round_trips_through_json(pkg):
    assert package_from_dict(package_to_dict(pkg)) == pkg


_SCHEMA = None


def _schema():
    global _SCHEMA
    if _SCHEMA is None:
        import xmlschema

        _SCHEMA = xmlschema.XMLSchema(str(Path(__file__).resolve().parents[2] / "schemas" / "edxml.xsd"))
    return _SCHEMA


@_SETTINGS
@given(strategies.document_packages(_SRC))
def test_every_written_document_package_validates_against_the_xsd(pkg):
    _schema().validate(package_bytes(pkg).decode("utf-8"))


@_SETTINGS
@given(strategies.status_packages)
def test_every_written_status_package_validates_against_the_xsd(pkg):
    _schema().validate(package_bytes(pkg).decode("utf-8"))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(pkg=strategies.document_packages(_SRC) | strategies.status_packages)
def test_writer_signing_equals_the_general_signer_and_verifies(pkg, agency_signer, trust_store):
    """The writer signs from its own canonical form; the general signer parses and
    canonicalises. Both must give the same bytes, and the result must verify."""
    import io

    from edxml.signature import sign_bytes, verify_bytes
    from edxml.writer import write_package

    now = datetime.now(timezone.utc)
    unsigned = io.BytesIO()
    write_package(pkg, unsigned, signature_slot=True)
    ours = package_bytes(pkg, signer=agency_signer)
    assert ours == sign_bytes(unsigned.getvalue(), agency_signer, now=now)
    verdict = verify_bytes(ours, trust_store)
    assert verdict.status == "valid", verdict
