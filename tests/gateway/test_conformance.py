"""`edoc-gateway conformance`: an agency's sample events checked as the gateway would check them."""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from gateway import conformance
from gateway.events import DOCUMENT_SEND, RECEIPT_SEND

H55, G22, H41 = "000.00.00.H55", "000.00.00.G22", "000.00.00.H41"
DOC_ID = f"{H55},2024/05/17,1234/UBND-VP"


def document_event(**attrs: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0", "id": "9f0c2a61-3f4e-4d7e-9a55-1c2b3d4e5f60",
        "source": f"urn:qlvb:{H55}", "type": DOCUMENT_SEND,
        "time": "2024-05-17T09:30:00+07:00", "agency": H55, "subject": DOC_ID,
        "datacontenttype": "application/json",
        "data": {
            "message_header": {
                "from": {"organ_id": H55, "organ_name": "UBND tỉnh Thái Nguyên"},
                "to": [{"organ_id": G22, "organ_name": "Văn phòng Chính phủ"}],
                "code": {"code_number": "1234", "code_notation": "UBND-VP"},
                "promulgation_info": {"place": "Thái Nguyên", "promulgation_date": "2024-05-17"},
                "document_type": {"type": 1, "type_name": "Công văn"},
                "subject": "V/v báo cáo tình hình triển khai văn bản điện tử",
            },
            "attachments": [{"content_id": "1", "attachment_name": "1234-UBND-VP.pdf",
                             "content_type": "application/pdf",
                             "uri": "file:///srv/edoc/share/h55/1234-UBND-VP.pdf",
                             "sha256": "c" * 64, "size": 3}],
            "secrecy": "none",
        },
    }
    event.update(attrs)
    return event


def receipt_event(code: str = "03", **attrs: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0", "id": f"r-{code}", "source": f"urn:qlvb:{G22}",
        "type": RECEIPT_SEND, "time": "2024-05-17T10:00:00+07:00", "agency": G22,
        "data": {"message_header": {
            "from": {"organ_id": G22},
            "response_for": {"organ_id": H55, "code": "1234/UBND-VP",
                             "promulgation_date": "2024-05-17", "document_id": DOC_ID},
            "status_code": code, "description": "Đã tiếp nhận"}},
    }
    event.update(attrs)
    return event


def write_jsonl(path: Path, *items: Any) -> Path:
    lines = [item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
             for item in items]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = conformance.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, *argv, "--json")
    return code, json.loads(out)


def test_valid_document_and_receipt_pass_with_exit_zero(tmp_path, capsys):
    events = write_jsonl(tmp_path / "ok.jsonl", document_event(), receipt_event("03"))
    code, report = run_json(capsys, str(events), "--agency", H55, "--agency", G22)
    assert code == 0
    assert report["summary"] == {"events": 2, "ok": 2, "failed": 0, "reasons": {},
                                 "warnings": {}, "senders_checked": True}
    first, second = report["results"]
    assert (first["ok"], first["document_id"], first["sender"], first["recipients"]) == \
        (True, DOC_ID, H55, [G22])
    assert (second["ok"], second["document_id"], second["recipients"]) == (True, DOC_ID, [H55])


def test_each_bad_line_is_reported_with_its_reason_and_line_number(tmp_path, capsys):
    bad_schema = document_event(id="b1")
    del bad_schema["data"]["message_header"]["subject"]
    secret = document_event(id="b2")
    secret["data"]["secrecy"] = "toi_mat"
    wrong_way = receipt_event("03", id="b3", agency=H55)
    wrong_way["data"]["message_header"]["from"] = {"organ_id": H55}
    no_id = document_event()
    del no_id["id"]
    events = write_jsonl(tmp_path / "mixed.jsonl", document_event(), "", bad_schema,
                         "{not json", secret, wrong_way, no_id,
                         document_event(id="b4", type="vn.gov.edoc.document.arrived.v1"))
    code, report = run_json(capsys, str(events))
    assert code == 1
    by_line = {r["line"]: r for r in report["results"]}
    assert by_line[1]["ok"] is True
    assert 2 not in by_line  # blank lines are skipped but still counted
    reasons = {line: r["error"]["reason"] for line, r in by_line.items() if not r["ok"]}
    assert reasons == {3: "event.schema", 4: "event.json", 5: "event.secret_document",
                       6: "event.status_direction", 7: "event.envelope", 8: "event.type"}
    assert "subject" in by_line[3]["error"]["message"]
    assert report["summary"]["failed"] == 6
    assert report["summary"]["reasons"]["event.schema"] == 1


def test_secret_document_report_repeats_nothing_of_the_document(tmp_path, capsys):
    secret = document_event()
    secret["data"]["secrecy"] = "mat"
    secret["data"]["message_header"]["subject"] = "NỘI DUNG MẬT 42"
    events = write_jsonl(tmp_path / "secret.jsonl", secret)
    code, out, _ = run(capsys, str(events))
    assert code == 1
    assert "event.secret_document" in out
    assert "NỘI DUNG MẬT" not in out and "1234" not in out


def test_sender_is_checked_only_against_the_given_agencies(tmp_path, capsys):
    events = write_jsonl(tmp_path / "one.jsonl", document_event())
    code, report = run_json(capsys, str(events), "--agency", H41)
    assert code == 1
    assert report["results"][0]["error"]["reason"] == "event.unknown_sender"
    code, report = run_json(capsys, str(events))
    assert code == 0
    assert report["summary"]["senders_checked"] is False


def test_agency_attribute_must_name_the_sender(tmp_path, capsys):
    events = write_jsonl(tmp_path / "mismatch.jsonl", document_event(agency=H41))
    code, report = run_json(capsys, str(events))
    assert code == 1
    assert report["results"][0]["error"]["reason"] == "event.agency_mismatch"


def test_warnings_do_not_fail_the_run(tmp_path, capsys):
    bare = document_event(id="w1", subject="000.00.00.H55,2024/05/17,9999/KHAC")
    del bare["time"], bare["agency"]
    reused = document_event(id="w1", subject=DOC_ID)
    reused["data"]["message_header"]["subject"] = "Một văn bản khác"
    events = write_jsonl(tmp_path / "warn.jsonl", bare, reused)
    code, report = run_json(capsys, str(events))
    assert code == 0
    assert report["summary"]["warnings"] == {"conformance.agency_missing": 1,
                                             "conformance.duplicate_id": 1,
                                             "conformance.key": 1,
                                             "conformance.time_missing": 1}
    assert [w["reason"] for w in report["results"][1]["warnings"]] == \
        ["conformance.duplicate_id"]


def test_same_id_with_the_same_data_is_a_retry_not_a_warning(tmp_path, capsys):
    events = write_jsonl(tmp_path / "retry.jsonl", document_event(), document_event())
    code, report = run_json(capsys, str(events))
    assert code == 0 and report["summary"]["warnings"] == {}


def test_files_option_checks_size_and_hash_of_local_attachments(tmp_path, capsys):
    content = b"%PDF-1.4 van ban"
    pdf = tmp_path / "share" / "1234.pdf"
    pdf.parent.mkdir()
    pdf.write_bytes(content)
    good = document_event(id="f1")
    good["data"]["attachments"][0].update(uri=pdf.as_uri(), size=len(content),
                                          sha256=hashlib.sha256(content).hexdigest())
    wrong_hash = copy.deepcopy(good)
    wrong_hash["id"] = "f2"
    wrong_hash["data"]["attachments"][0]["sha256"] = "0" * 64
    wrong_size = copy.deepcopy(good)
    wrong_size["id"] = "f3"
    wrong_size["data"]["attachments"][0]["size"] = len(content) + 1
    missing = copy.deepcopy(good)
    missing["id"] = "f4"
    missing["data"]["attachments"][0]["uri"] = (tmp_path / "nope.pdf").as_uri()
    events = write_jsonl(tmp_path / "files.jsonl", good, wrong_hash, wrong_size, missing)
    code, report = run_json(capsys, str(events), "--files")
    assert code == 1
    assert [r["error"]["reason"] if r["error"] else "ok" for r in report["results"]] == \
        ["ok", "store.hash_mismatch", "store.size_mismatch", "store.missing"]
    # Without --files the references are checked for form only.
    code, report = run_json(capsys, str(events))
    assert code == 0


def test_text_report_has_one_line_per_event_and_a_summary(tmp_path, capsys):
    events = write_jsonl(tmp_path / "t.jsonl", document_event(), "[1, 2]")
    code, out, _ = run(capsys, str(events), "--agency", H55)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("line 1: ok") and DOC_ID in lines[0]
    assert lines[1].startswith("line 2: FAILED") and "event.envelope" in lines[1]
    assert "2 event(s), 1 ok, 1 failed" in out
    assert "event.envelope x1:" in out


@pytest.mark.parametrize("argv, message", [
    (["missing.jsonl"], "cannot read"),
    (["empty.jsonl"], "holds no events"),
    (["ok.jsonl", "--agency", "UBND Thai Nguyen"], "--agency"),
])
def test_usage_errors_exit_two(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    write_jsonl(tmp_path / "ok.jsonl", document_event())
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and out == ""


def test_register_cli_adds_the_conformance_subcommand(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="edoc-gateway")
    sub = parser.add_subparsers(dest="command")
    conformance.register_cli(sub)
    events = write_jsonl(tmp_path / "ok.jsonl", document_event())
    args = parser.parse_args(["conformance", str(events), "--agency", H55, "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["ok"] == 1


def test_reason_table_covers_every_reason_the_module_adds():
    source = Path(conformance.__file__).read_text(encoding="utf-8")
    import re

    used = set(re.findall(r'Finding\("([a-z_.]+)"', source))
    assert used and used <= set(conformance.REASONS)
