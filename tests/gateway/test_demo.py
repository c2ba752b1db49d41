"""The quickstart, `edoc-gateway demo --no-wait`, run as a user would run it: a subprocess with
the test broker in KAFKA_BOOTSTRAP_SERVERS (the demo then starts no broker of its own)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

DEMO = [sys.executable, "-m", "gateway.cli", "demo"]


@pytest.fixture(scope="module")
def demo_run(kafka_bootstrap, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("quickstart")
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
    done = subprocess.run([*DEMO, "--dir", "demo", "--no-wait"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    return cwd, done


def _steps(out: str) -> list[tuple[str, str, str]]:
    """(who, step, detail) of every timeline line, in order."""
    found = []
    for line in out.splitlines():
        m = re.match(r"^\d\d:\d\d:\d\d\.\d{3} +[+-]\d+\.\ds  (.{12}) (\S+(?: \d\d)?) +(.*)$", line)
        if m:
            found.append((m.group(1).strip(), m.group(2), m.group(3)))
    return found


def test_the_demo_runs_the_whole_timeline_and_exits_0(demo_run):
    _, done = demo_run
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [(who, step) for who, step, _ in _steps(done.stdout)]
    exchange = [s for s in steps if s[0] in ("Thái Nguyên", "Nghệ An")]
    expected = [("Thái Nguyên", "document.send"), ("Thái Nguyên", "delivery.accepted"),
                ("Nghệ An", "document.arrived")]
    assert exchange[:3] == expected, done.stdout
    for code in ("01", "03", "06"):
        sent = exchange.index(("Nghệ An", f"receipt.send {code}"))
        back = exchange.index(("Thái Nguyên", f"receipt.arrived {code}"))
        assert sent < back
    assert exchange.count(("Nghệ An", "delivery.accepted")) == 3
    assert steps.index(("done", "timeline")) > steps.index(("Thái Nguyên", "receipt.arrived 06"))
    assert [who for who, step in steps if step == "audit"] == ["Thái Nguyên", "Nghệ An"]


def test_the_timeline_shows_the_doc_id_the_signature_and_the_attachment_check(demo_run):
    _, done = demo_run
    out = done.stdout
    assert re.search(r"delivery\.accepted +document 101/UBND-VP: signed and sent, axis DocId "
                     r"[0-9a-f-]{36}", out)
    arrived = out[out.index("document.arrived"):out.index("receipt.send 01")]
    assert "from 000.00.00.H55" in arrived
    assert "subject: V/v phối hợp triển khai liên thông văn bản điện tử" in arrived
    assert "signature valid; signer UID=000.00.00.H55,CN=UBND tỉnh Thái Nguyên" in arrived
    assert re.search(r"attachment cong-van-101-UBND-VP\.pdf \(\d+ bytes, application/pdf\): "
                     r"sha256 matches the file sent; the stored copy re-hashes the same", arrived)
    # Who signed the PDF, as the receiving side judged it, and the original next to it.
    assert re.search(r"pdf cong-van-101-UBND-VP\.pdf \(digitised\): signed by UBND tỉnh Thái "
                     r"Nguyên \[000\.00\.00\.H55\] at \S+: valid, covers whole file", arrived)
    assert re.search(r"attachment cong-van-101-UBND-VP\.docx \(\d+ bytes, \S+\): sha256 matches",
                     arrived)
    assert "issuer rule (require): the sender signed its PDF" in arrived
    assert re.search(r"receipt\.arrived 06 +Hoàn thành — from 000\.00\.00\.H41, axis DocId "
                     r"\S+, signature valid", out)
    assert "every hash chain intact" in out


def test_the_demo_traces_its_document_across_both_provinces(demo_run):
    _, done = demo_run
    out = done.stdout
    assert "$ edoc-gateway trace 101/UBND-VP" in out
    timeline = out.split("$ edoc-gateway trace 101/UBND-VP", 1)[1].split("\n\n", 1)[0]
    assert " 00.55.W00 " in timeline and " 00.41.W00 " in timeline, timeline
    assert "receipt 06 (Hoàn thành)" in timeline
    assert "state: completed" in timeline
    assert re.search(r"status console http://127\.0\.0\.1:\d+/", out), out
    assert re.search(r"edoc-gateway trace 101/UBND-VP --config \S+ --config \S+ --index ", out)


def test_the_demo_says_where_things_are_and_stops_what_it_started(demo_run):
    cwd, done = demo_run
    out = done.stdout
    assert "metrics http://127.0.0.1:" in out
    assert "Kafka            " in out and "(KAFKA_BOOTSTRAP_SERVERS)" in out
    last = out.strip().splitlines()[-1]
    # The broker was not the demo's: it is left alone.
    assert last.startswith("stopped: gateway H55 (exit 0), gateway H41 (exit 0), axis simulator.")
    for province in ("h55", "h41"):
        log = (cwd / "demo" / province / "gateway.log").read_text(encoding="utf-8")
        stopped = [json.loads(line) for line in log.splitlines()
                   if line.startswith("{") and '"gateway.stopped"' in line]
        assert [entry["exit_code"] for entry in stopped] == [0]
    assert not (cwd / "demo" / "demo-state.json").exists()


def test_the_printed_inspect_command_shows_the_received_package_signed_and_valid(demo_run):
    cwd, done = demo_run
    (command,) = re.findall(r"^  edoc-gateway (inspect \S+ --trust \S+)$", done.stdout,
                            re.MULTILINE)
    shown = subprocess.run([sys.executable, "-m", "gateway.cli", *command.split()], cwd=cwd,
                           capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "signature: valid by UID=000.00.00.H55" in shown.stdout
    assert "cong-van-101-UBND-VP.pdf [application/pdf]" in shown.stdout


def test_a_directory_the_demo_did_not_make_is_left_alone(tmp_path):
    precious = tmp_path / "notes.txt"
    precious.write_text("mine")
    done = subprocess.run([*DEMO, "--dir", str(tmp_path), "--no-wait"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "was not made by the demo" in done.stdout
    assert precious.read_text() == "mine"
