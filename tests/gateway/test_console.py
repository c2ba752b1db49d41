"""The status console: pages, languages, escaping and headers over real HTTP (fast, from an
index filled directly), then the real daemon's console in a real headless Chromium."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest

from gateway.http import HealthState, start_http_server
from gateway.ops.console import Console, ConsoleState
from gateway.ops.index import Fact, TraceIndex
from tests.browser import Browser, find_chromium

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "img"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
DOC = "000.00.00.H55,2026/12/02,101/UBND-VP"


def _facts() -> list[Fact]:
    common = {"topic": "t", "partition": 0, "source": "00.55.W00"}
    return [
        Fact(**common, offset=1, time="2026-12-02T01:00:00.000Z", kind="document.send",
             document_id=DOC, event_id="ev-1", notation="101/UBND-VP", agency="000.00.00.H55",
             detail={"subject": "V/v <b>thử</b> nghiệm", "from": "000.00.00.H55",
                     "to": ["000.00.00.H41"]}),
        Fact(**common, offset=2, time="2026-12-02T01:00:02.000Z", kind="delivery.accepted",
             flow="document", document_id=DOC, event_id="ev-1", axis_doc_id="777",
             agency="000.00.00.H55"),
        Fact(**common, offset=3, time="2026-12-02T02:00:00.000Z", kind="deadletter",
             flow="document", document_id="OTHER", event_id="ev-2", reason="store.missing",
             detail={"deadletter_id": "dl:t:0:9", "message": "file not found"}),
    ]


@pytest.fixture
async def console(tmp_path):
    index = TraceIndex(tmp_path / "index.sqlite")
    index.add(_facts(), {})
    index.close()
    health = HealthState(["kafka", "axis"])
    health.set_ok("kafka")
    health.set_failed("axis", "axis.unavailable: HTTP 503")
    state = ConsoleState(index_path=tmp_path / "index.sqlite", health=health, version="9.9.9",
                         instance="gw-test", agencies=[("000.00.00.H55", "UBND tỉnh Thái Nguyên")],
                         certificates={"000.00.00.H55": NOW + timedelta(days=20)},
                         clock=lambda: NOW)
    server = await start_http_server(_registry(), health, setup=Console(state).setup)
    async with aiohttp.ClientSession() as session:
        yield server.url, session
    await server.stop()


def _registry():
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


async def _get(session, url):
    async with session.get(url) as resp:
        return resp.status, resp.headers, await resp.text()


async def test_front_page_shows_version_checks_and_what_needs_attention(console):
    url, session = console
    status, headers, body = await _get(session, url + "/?lang=en")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "Version 9.9.9" in body and "gw-test" in body
    assert "axis.unavailable: HTTP 503" in body
    assert "documents overdue for a receipt" in body
    assert "101/UBND-VP" in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "<script" not in body and "http://" not in body.replace(url, "")


async def test_pages_speak_vietnamese_by_default_and_english_when_asked(console):
    url, session = console
    _, _, vi = await _get(session, url + "/awaiting")
    _, _, en = await _get(session, url + "/awaiting?lang=en")
    assert "Chờ biên nhận" in vi and 'lang="vi"' in vi
    assert "Awaiting receipts" in en and 'lang="en"' in en
    assert DOC in en  # sent 11 h before NOW (10 h 59 min), no receipt, threshold 8 h


async def test_search_finds_a_document_and_shows_its_state(console):
    url, session = console
    _, _, body = await _get(session, url + "/document?lang=en&q=101/UBND-VP")
    assert 'data-state="awaiting-01"' in body and "sent 10 h ago, no 01 yet" in body
    assert "V/v &lt;b&gt;thử&lt;/b&gt; nghiệm" in body  # escaped, not markup


async def test_a_hostile_query_is_escaped(console):
    url, session = console
    _, _, body = await _get(session, url + "/document?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>" not in body and "&lt;script&gt;" in body


async def test_dead_letters_agencies_and_static_files(console):
    url, session = console
    _, _, letters = await _get(session, url + "/deadletters?lang=en")
    assert "store.missing" in letters and "edoc-gateway dlq replay" in letters
    _, _, agencies = await _get(session, url + "/agencies?lang=en")
    assert "UBND tỉnh Thái Nguyên" in agencies and ">20<" in agencies
    for path, kind in (("/console.css", "text/css"), ("/favicon.ico", "image/svg+xml")):
        status, headers, _ = await _get(session, url + path)
        assert status == 200 and headers["Content-Type"].startswith(kind)


async def test_the_console_is_read_only(console):
    url, session = console
    async with session.post(url + "/document", data={"q": "x"}) as resp:
        assert resp.status == 405


def test_the_console_is_off_by_default_outside_loopback():
    from gateway.config import HttpSection

    assert HttpSection(listen="127.0.0.1:9464").console_enabled
    assert HttpSection(listen="[::1]:9464").console_enabled
    assert not HttpSection(listen="0.0.0.0:9464").console_enabled
    assert not HttpSection(listen="10.1.2.3:9464").console_enabled
    assert HttpSection(listen="0.0.0.0:9464", console="on").console_enabled
    assert not HttpSection(listen="127.0.0.1:9464", console="off").console_enabled


# -- the daemon's console in a real browser ------------------------------------------------------

def _console_url(gateway) -> str:
    for line in gateway.log.read_text(errors="replace").splitlines():
        if '"gateway.starting"' in line:
            return json.loads(line)["console"].rstrip("/")
    raise AssertionError("no gateway.starting line")


@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (Debian "
                    "package chromium; scripts/bootstrap installs it)")
async def test_console_pages_load_in_chromium_and_search_finds_a_demo_document(
        kafka_bootstrap, tmp_path):
    from gateway import events
    from gateway.lab import NGHE_AN, THAI_NGUYEN, AgencyClient, Lab

    lab = Lab(tmp_path / "lab", kafka_bootstrap)
    lab.start()
    try:
        tn_gateway = lab.start_gateway(THAI_NGUYEN)
        lab.start_gateway(NGHE_AN)
        tn = AgencyClient(lab, THAI_NGUYEN, "000.00.00.H55")
        na = AgencyClient(lab, NGHE_AN, "000.00.00.H41")
        pdf = b"%PDF-1.4\n" + bytes(range(256)) * 20 + b"\n%%EOF\n"
        doc = tn.document(to=[("000.00.00.H41", "UBND tỉnh Nghệ An")], number="101",
                          notation="UBND-VP", subject="V/v thử nghiệm liên thông văn bản",
                          attachments=[tn.attachment("cong-van.pdf", pdf)])
        key = doc["message_header"]["document_id"]
        await tn.publish(events.DOCUMENT_SEND, doc, key=key)
        await na.wait_for("inbound_documents", lambda e: e.data["package"]["message_header"]
                          ["document_id"] == key)
        for code in ("01", "03"):
            await na.publish(events.RECEIPT_SEND, na.receipt(document=doc, code=code,
                                                             description="ok"), key=key)
        secret = tn.document(to=[("000.00.00.H41", "UBND tỉnh Nghệ An")], number="102",
                             notation="UBND-VP", subject="Tài liệu mật",
                             attachments=[tn.attachment("mat.pdf", pdf)], secrecy="mat")
        await tn.publish(events.DOCUMENT_SEND, secret,
                         key=secret["message_header"]["document_id"])
        await tn.wait_for("inbound_receipts", lambda e: e.data["message_header"]
                          ["response_for"]["document_id"] == key, count=2)
        await tn.wait_for("deadletter", lambda e: e.data.get("reason")
                          == "event.secret_document")

        base = await asyncio.to_thread(_wait_for_console, tn_gateway)
        # The console's index catches up every few seconds: wait until both show.
        async with aiohttp.ClientSession() as session:
            for _ in range(120):
                _, _, found = await _get(session, f"{base}/document?q=101/UBND-VP&lang=en")
                _, _, letters = await _get(session, f"{base}/deadletters")
                if 'data-state="in-progress"' in found and "event.secret_document" in letters:
                    break
                await asyncio.sleep(0.5)

        pages = {"overview": "/", "document": "/document?q=101%2FUBND-VP",
                 "awaiting": "/awaiting", "deadletters": "/deadletters",
                 "agencies": "/agencies"}
        update = os.environ.get("EDOC_UPDATE_SCREENSHOTS") == "1"
        async with Browser.start(tmp_path / "chromium") as browser:
            for lang in ("vi", "en"):
                for name, path in pages.items():
                    sep = "&" if "?" in path else "?"
                    page = await browser.open(f"{base}{path}{sep}lang={lang}",
                                              screenshot=update)
                    assert page.errors == [], (name, lang, page.errors)
                    assert "edoc-gateway" in page.title, (name, page.title)
                    assert f'lang="{lang}"' in page.html
                    if name == "document":
                        assert key in page.html, page.html[-3000:]
                        assert 'data-state="in-progress"' in page.html
                    if name == "deadletters":
                        assert "event.secret_document" in page.html
                    if update and page.screenshot:
                        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                        (SCREENSHOTS / f"console-{name}.{lang}.png").write_bytes(page.screenshot)
    finally:
        lab.stop()


def _wait_for_console(gateway) -> str:
    import time

    for _ in range(300):
        try:
            return _console_url(gateway)
        except (AssertionError, FileNotFoundError):
            time.sleep(0.2)
    return _console_url(gateway)


@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed")
async def test_the_browser_check_sees_missing_resources_and_script_errors(tmp_path):
    """The check above would catch a broken page: a 404 stylesheet and a script error."""
    from aiohttp import web

    async def broken(request):
        return web.Response(text='<!DOCTYPE html><html><head><title>t</title>'
                                 '<link rel="stylesheet" href="/missing.css"></head><body>'
                                 '<script>console.error("boom"); undefinedFunction();</script>'
                                 '</body></html>', content_type="text/html")

    app = web.Application()
    app.router.add_get("/", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with Browser.start(tmp_path / "chromium") as browser:
            page = await browser.open(f"http://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()
    text = "\n".join(page.errors)
    assert "missing.css" in text and "boom" in text and "undefinedFunction" in text, text


async def test_the_vietnamese_page_tells_the_state_and_the_timeline_in_vietnamese(console):
    url, session = console
    _, _, body = await _get(session, url + "/document?q=101/UBND-VP")
    assert "đã gửi 10 h trước, chưa có biên nhận 01" in body
    assert "trục đã nhận văn bản: DocId 777" in body
    assert "yêu cầu gửi văn bản" in body


# -- the index is read from the topics when someone looks ---------------------------------------

class _Topics:
    """Stands in for `TraceIndex.update`: counts the reads, and each read finds `pending`."""

    def __init__(self) -> None:
        self.reads = 0
        self.pending: list[Fact] = []

    async def update(self, index: TraceIndex, settings, sources, **kwargs) -> int:
        self.reads += 1
        added = index.add(self.pending, {})
        self.pending = []
        return added


@pytest.fixture
def topics(monkeypatch):
    fake = _Topics()

    async def update(self, settings, sources, **kwargs):
        return await fake.update(self, settings, sources, **kwargs)

    monkeypatch.setattr(TraceIndex, "update", update)
    return fake


def _state(tmp_path, now=NOW, **kwargs) -> ConsoleState:
    from gateway.ops.console import IndexFreshness

    health = HealthState(["kafka"])
    return ConsoleState(index_path=tmp_path / "index.sqlite", health=health, version="9.9.9",
                        instance="gw-test", clock=lambda: now,
                        freshness=IndexFreshness(**kwargs))


async def test_nobody_looking_means_the_topics_are_not_read(tmp_path, topics):
    from gateway.ops.console import keep_index_fresh

    state, stopping = _state(tmp_path), asyncio.Event()
    task = asyncio.create_task(keep_index_fresh(state, None, [], stopping, every_s=0.01))
    await asyncio.sleep(0.3)
    assert topics.reads == 0 and state.refreshed is None
    stopping.set()
    await task
    assert state.freshness.running is False


async def test_a_page_sees_what_was_written_before_it_was_asked_for(tmp_path, topics):
    from gateway.ops.console import keep_index_fresh

    state, stopping = _state(tmp_path), asyncio.Event()
    # A long background interval: only the page's request can trigger the read.
    task = asyncio.create_task(keep_index_fresh(state, None, [], stopping, every_s=3600))
    server = await start_http_server(_registry(), state.health, setup=Console(state).setup)
    try:
        await asyncio.sleep(0.05)
        topics.pending = _facts()
        async with aiohttp.ClientSession() as session:
            _, _, body = await _get(session, server.url + "/document?lang=en&q=101/UBND-VP")
        assert topics.reads == 1
        assert 'data-state="awaiting-01"' in body
        assert state.refreshed == NOW
    finally:
        stopping.set()
        await task
        await server.stop()


async def test_the_index_is_kept_fresh_while_watched_and_left_alone_after(tmp_path, topics):
    from gateway.ops.console import keep_index_fresh

    clock = [1000.0]
    state, stopping = _state(tmp_path, monotonic=lambda: clock[0]), asyncio.Event()
    task = asyncio.create_task(keep_index_fresh(state, None, [], stopping, every_s=0.01,
                                                watched_s=60))
    try:
        await asyncio.sleep(0.05)
        await state.freshness.catch_up(fresh_s=0)
        assert topics.reads == 1
        await asyncio.sleep(0.3)
        watched = topics.reads
        assert watched > 3  # every 0.01 s while a page was viewed within 60 s
        clock[0] += 61
        await asyncio.sleep(0.1)
        idle = topics.reads
        await asyncio.sleep(0.3)
        assert topics.reads == idle  # nobody looked for 61 s: no more reads
    finally:
        stopping.set()
        await task


async def test_a_page_does_not_wait_long_for_a_slow_catch_up(tmp_path, monkeypatch):
    from gateway.ops.console import keep_index_fresh

    release = asyncio.Event()

    async def slow(self, settings, sources, **kwargs):
        await release.wait()
        return 0

    monkeypatch.setattr(TraceIndex, "update", slow)
    state, stopping = _state(tmp_path), asyncio.Event()
    task = asyncio.create_task(keep_index_fresh(state, None, [], stopping, every_s=3600))
    try:
        await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        await state.freshness.catch_up(wait_s=0.2)
        waited = asyncio.get_running_loop().time() - started
        assert 0.15 < waited < 2
        assert state.freshness.started == 1 and state.freshness.finished == 0
    finally:
        release.set()
        stopping.set()
        await task
