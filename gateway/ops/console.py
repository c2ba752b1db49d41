"""The read-only status console: server-rendered HTML on the metrics/health port.

What an operator asks during the day, in Vietnamese or English (`?lang=vi|en`): where is
document X (search by DocumentId, số/ký hiệu, event id or axis DocId, with the timeline of
`edoc-gateway trace`), which sent documents still have no receipt after the threshold, which
dead letters are waiting and why, each agency's certificate expiry and last traffic, CRL
freshness, and the state of the axis and Kafka as `/readyz` sees them.

It changes nothing: GET only, no forms that write, replay stays a CLI action (audited). Pages
are plain HTML with one stylesheet served from here; no script, nothing loaded from outside,
and a Content-Security-Policy that says so. It is served only on a loopback address unless
`[http] console = "on"` (then behind the operator's own authenticating proxy).

The pages read the trace index (`gateway.ops.index`), which `keep_index_fresh` brings up to
date from this gateway's topics when someone looks: a page asks for a catch-up and waits for it
(a few seconds at most), and while pages are being viewed the index is also caught up every few
seconds. When nobody has looked for a while, nothing is read, so the console costs the
gateway no CPU per document when nobody uses it.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog
from aiohttp import web

from gateway.ops.index import Fact, TopicSource, TraceIndex
from gateway.ops.trace import awaiting_receipt, status_label, summary_vi, trace

log = structlog.get_logger(__name__)

MAX_QUERY_CHARS = 300
LANGS = ("vi", "en")
#: A page waits at most this long for the index to catch up, then shows what is there.
CATCH_UP_WAIT_S = 5.0
#: An index refreshed this recently is shown without another catch-up.
FRESH_FOR_S = 1.0
#: After the last page view, the index is kept fresh in the background this long.
WATCHED_FOR_S = 600.0

#: Every text of the pages: key -> (Vietnamese, English).
TEXT: dict[str, tuple[str, str]] = {
    "title": ("Bảng trạng thái edoc-gateway", "edoc-gateway status console"),
    "overview": ("Tổng quan", "Overview"),
    "awaiting": ("Chờ biên nhận", "Awaiting receipts"),
    "deadletters": ("Thư lỗi", "Dead letters"),
    "agencies": ("Đơn vị và chứng thư", "Agencies and certificates"),
    "search": ("Tìm văn bản", "Find a document"),
    "search_hint": ("DocumentId, số/ký hiệu, mã sự kiện hoặc DocId trên trục",
                    "DocumentId, số/ký hiệu, event id or axis DocId"),
    "go": ("Tìm", "Search"),
    "version": ("Phiên bản", "Version"),
    "instance": ("Phiên chạy", "Instance"),
    "state": ("Trạng thái", "State"),
    "checks": ("Kết nối", "Connections"),
    "ok": ("bình thường", "ok"),
    "failing": ("lỗi", "failing"),
    "since": ("từ", "since"),
    "index": ("Chỉ mục tra cứu", "Trace index"),
    "index_at": ("cập nhật lúc", "updated at"),
    "index_never": ("chưa cập nhật", "not updated yet"),
    "recent": ("Văn bản gần đây", "Recent documents"),
    "time": ("Thời gian", "Time"),
    "notation": ("Số/ký hiệu", "Number/notation"),
    "subject": ("Trích yếu", "Subject"),
    "from": ("Nơi gửi", "From"),
    "to": ("Nơi nhận", "To"),
    "kind": ("Loại", "Kind"),
    "sent": ("gửi đi", "sent"),
    "arrived": ("nhận về", "arrived"),
    "none": ("Không có.", "None."),
    "not_found": ("Không tìm thấy văn bản nào khớp với", "No document matches"),
    "timeline": ("Diễn biến", "Timeline"),
    "source": ("Nơi ghi", "Recorded by"),
    "what": ("Sự việc", "What happened"),
    "awaited": ("Đang chờ", "Awaiting"),
    "receipts": ("Biên nhận", "Receipts"),
    "overdue_intro": ("Văn bản đã gửi lên trục nhưng chưa có biên nhận nào sau",
                      "Documents sent to the axis without any receipt after"),
    "ago": ("đã qua", "ago"),
    "reason": ("Mã lý do", "Reason"),
    "message": ("Chi tiết", "Details"),
    "document": ("Văn bản", "Document"),
    "replayed": ("Đã phát lại", "Replayed"),
    "yes": ("có", "yes"),
    "no": ("chưa", "no"),
    "replay_hint": ("Phát lại là thao tác dòng lệnh (được ghi nhật ký kiểm toán):",
                    "Replaying is a command-line action (it is audited):"),
    "agency": ("Mã định danh", "OrganId"),
    "name": ("Tên đơn vị", "Name"),
    "cert_expiry": ("Chứng thư hết hạn", "Certificate expires"),
    "days_left": ("Còn (ngày)", "Days left"),
    "last_traffic": ("Lần trao đổi cuối", "Last traffic"),
    "crls": ("Danh sách thu hồi (CRL)", "Certificate revocation lists (CRL)"),
    "crl_file": ("Tệp CRL", "CRL file"),
    "next_update": ("Cập nhật tiếp (nextUpdate)", "nextUpdate"),
    "fresh": ("còn hiệu lực", "fresh"),
    "stale": ("QUÁ HẠN", "STALE"),
    "unreadable": ("không đọc được", "unreadable"),
    "counts": ("Cần chú ý", "Needs attention"),
    "n_overdue": ("văn bản chờ biên nhận quá hạn", "documents overdue for a receipt"),
    "n_letters": ("thư lỗi chưa phát lại", "dead letters not replayed"),
    "n_stale": ("CRL quá hạn", "stale CRLs"),
    "n_expiring": ("chứng thư hết hạn trong 30 ngày", "certificates expiring within 30 days"),
    "readonly": ("Chỉ xem: bảng này không thay đổi gì.", "Read-only: this console changes "
                 "nothing."),
}

STATE_TEXT: dict[str, tuple[str, str]] = {
    "not-found": ("không có", "not found"),
    "awaiting-send": ("chờ gửi", "waiting to be sent"),
    "dead-lettered": ("vào thư lỗi", "dead-lettered"),
    "replayed": ("đã phát lại, chờ gửi", "replayed, waiting to be sent"),
    "failed": ("thất bại", "failed"),
    "awaiting-01": ("đã gửi, chờ biên nhận 01", "sent, awaiting 01"),
    "in-progress": ("đang xử lý", "in progress"),
    "completed": ("hoàn thành", "completed"),
    "rejected": ("bị từ chối", "rejected"),
    "revocation-requested": ("đề nghị thu hồi", "revocation requested"),
    "revoked": ("đã thu hồi", "revoked"),
    "revocation-refused": ("từ chối thu hồi", "revocation refused"),
}

#: What a state waits for (`TraceState.awaited`), in Vietnamese.
AWAITED_VI: dict[str, str] = {
    "15 or 16 from the recipient": "biên nhận 15 hoặc 16 của bên nhận",
    "a fix, then `edoc-gateway dlq replay`": "khắc phục nguyên nhân, rồi `edoc-gateway dlq replay`",
    "the gateway to send it": "cổng kết nối gửi văn bản",
    "the axis to accept it": "trục tiếp nhận văn bản",
}

STYLESHEET = """
:root { --ink: #1d2733; --muted: #5b6878; --line: #d5dbe3; --bg: #f5f7fa; --accent: #a3151b;
        --ok: #1e7b34; --warn: #9a5b00; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, "Segoe UI", Roboto, "Noto Sans", sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: var(--accent); color: #fff; padding: .8rem 1.5rem; display: flex;
         flex-wrap: wrap; gap: 1rem; align-items: baseline; }
header h1 { font-size: 1.15rem; margin: 0; }
header .meta { font-size: .85rem; opacity: .9; }
header .lang { margin-left: auto; }
header a { color: #fff; }
nav { background: #fff; border-bottom: 1px solid var(--line); padding: .5rem 1.5rem;
      display: flex; flex-wrap: wrap; gap: 1.2rem; align-items: center; }
nav a { color: var(--ink); text-decoration: none; font-weight: 600; }
nav a.here { color: var(--accent); border-bottom: 2px solid var(--accent); }
nav form { margin-left: auto; display: flex; gap: .4rem; }
nav input[type=search] { width: 24rem; max-width: 60vw; padding: .35rem .5rem;
                         border: 1px solid var(--line); border-radius: 4px; }
nav button { padding: .35rem .8rem; border: 0; border-radius: 4px; background: var(--accent);
             color: #fff; font-weight: 600; }
main { padding: 1rem 1.5rem 2rem; max-width: 80rem; }
h2 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: #eef1f5; font-size: .85rem; color: var(--muted); }
td.mono, span.mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85rem; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .6rem .9rem;
        min-width: 12rem; }
.card b { display: block; font-size: 1.4rem; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
.state { background: #fff; border-left: 4px solid var(--accent); padding: .6rem .9rem;
         margin: .8rem 0; }
.muted { color: var(--muted); font-size: .85rem; }
code { background: #eef1f5; padding: .1rem .3rem; border-radius: 3px; }
"""

FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
           '<rect width="16" height="16" rx="3" fill="#a3151b"/>'
           '<path d="M4 4h8v2H6v1h5v2H6v1h6v2H4z" fill="#fff"/></svg>')

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@dataclass
class ConsoleState:
    """What the console shows besides the index: filled by the daemon (or a test)."""

    index_path: Path
    health: Any                                   # gateway.http.HealthState
    version: str
    instance: str
    agencies: Sequence[tuple[str, str]] = ()      # (OrganId, name)
    certificates: Mapping[str, datetime] = field(default_factory=dict)   # OrganId -> notAfter
    crl_files: Sequence[Path] = ()
    overdue: timedelta = timedelta(hours=8)
    replay_hint: str = "edoc-gateway dlq replay --config gateway.toml --id DEAD-LETTER-ID"
    refreshed: datetime | None = None
    refresh_error: str | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    freshness: IndexFreshness = field(default_factory=lambda: IndexFreshness())


class IndexFreshness:
    """Between the pages and `keep_index_fresh`: who wants the index caught up, and how far
    the catching up has got (counts of refreshes started and finished)."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self.running = False                 # a `keep_index_fresh` loop serves requests
        self.wanted = asyncio.Event()        # a page asked for a catch-up
        self.started = 0
        self.finished = 0
        self.last_finished: float | None = None   # monotonic time of the last refresh's end
        self.last_wanted: float | None = None     # monotonic time a page last asked
        self._done = asyncio.Event()

    def begin(self) -> None:
        self.wanted.clear()
        self.started += 1

    def end(self) -> None:
        self.finished += 1
        self.last_finished = self.monotonic()
        done, self._done = self._done, asyncio.Event()
        done.set()

    def watched(self, within_s: float) -> bool:
        """Whether a page asked for the index within the last `within_s` seconds."""
        return self.last_wanted is not None and self.monotonic() - self.last_wanted < within_s

    async def catch_up(self, *, wait_s: float = CATCH_UP_WAIT_S,
                       fresh_s: float = FRESH_FOR_S) -> None:
        """Before a page reads the index: have it caught up by a refresh that starts now (a
        refresh under way may have begun before the newest records), waiting `wait_s` at
        most; an index refreshed in the last `fresh_s` seconds is used as it is."""
        self.last_wanted = self.monotonic()
        if not self.running:
            return
        if self.last_finished is not None and self.last_wanted - self.last_finished < fresh_s:
            return
        goal = self.started + 1
        self.wanted.set()
        deadline = self.monotonic() + wait_s
        while self.finished < goal:
            remaining = deadline - self.monotonic()
            if remaining <= 0:
                return  # the page shows what is there, with the time of the last refresh
            try:
                await asyncio.wait_for(self._done.wait(), remaining)
            except asyncio.TimeoutError:
                return


def crl_next_updates(files: Sequence[Path]) -> list[tuple[str, datetime | None]]:
    """(file name, nextUpdate) of each CRL file; None when it cannot be read."""
    from cryptography import x509

    out: list[tuple[str, datetime | None]] = []
    for path in files:
        try:
            data = Path(path).read_bytes()
            crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data[:100] \
                else x509.load_der_x509_crl(data)
            out.append((Path(path).name, crl.next_update_utc))
        except (OSError, ValueError):
            out.append((Path(path).name, None))
    return out


class Console:
    """The console's routes on an aiohttp application (`setup`)."""

    def __init__(self, state: ConsoleState) -> None:
        self.state = state
        self._index: TraceIndex | None = None

    def index(self) -> TraceIndex:
        # Its own connection, for reading while `keep_index_fresh` writes (WAL mode).
        if self._index is None:
            self._index = TraceIndex(self.state.index_path)
        return self._index

    async def fresh_index(self) -> TraceIndex:
        """The index, caught up with the topics first (see `IndexFreshness.catch_up`)."""
        await self.state.freshness.catch_up()
        return self.index()

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/", self.overview)
        app.router.add_get("/document", self.document)
        app.router.add_get("/awaiting", self.awaiting)
        app.router.add_get("/deadletters", self.deadletters)
        app.router.add_get("/agencies", self.agencies)
        app.router.add_get("/console.css", self.stylesheet)
        app.router.add_get("/favicon.ico", self.favicon)
        app.router.add_get("/favicon.svg", self.favicon)
        app.on_cleanup.append(self._close)

    async def _close(self, app: web.Application) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    # -- page frame -------------------------------------------------------------------------

    @staticmethod
    def lang(request: web.Request) -> str:
        asked = request.query.get("lang")
        if asked in LANGS:
            return asked
        accept = request.headers.get("Accept-Language", "").lower()
        return "en" if accept.startswith("en") else "vi"

    def page(self, request: web.Request, here: str, title_key: str, body: str) -> web.Response:
        lang = self.lang(request)
        t = _t(lang)
        s = self.state

        def link(path: str, key: str) -> str:
            cls = ' class="here"' if path == here else ""
            return f'<a href="{e(_url(path, lang))}"{cls}>{e(t(key))}</a>'

        other = "en" if lang == "vi" else "vi"
        switch_query = {k: v for k, v in request.query.items() if k != "lang"}
        switch_query["lang"] = other
        switch = f'{request.path}?{urlencode(switch_query)}'
        query = request.query.get("q", "")[:MAX_QUERY_CHARS] if here == "/document" else ""
        text = f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(t(title_key))} · {e(t("title"))}</title>
<link rel="stylesheet" href="/console.css">
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
</head>
<body>
<header><h1>{e(t("title"))}</h1>
<span class="meta">{e(t("version"))} {e(s.version)} · {e(t("instance"))} {e(s.instance)}</span>
<span class="lang"><a href="{e(switch)}" hreflang="{other}">{"English" if lang == "vi" else "Tiếng Việt"}</a></span>
</header>
<nav>{link("/", "overview")} {link("/awaiting", "awaiting")} {link("/deadletters", "deadletters")} {link("/agencies", "agencies")}
<form method="get" action="/document" role="search"><input type="hidden" name="lang" value="{lang}">
<input type="search" name="q" value="{e(query)}" placeholder="{e(t("search_hint"))}" aria-label="{e(t("search"))}" maxlength="{MAX_QUERY_CHARS}">
<button type="submit">{e(t("go"))}</button></form></nav>
<main>
{body}
<p class="muted">{e(t("readonly"))}</p>
</main>
</body>
</html>
"""
        return web.Response(text=text, content_type="text/html", charset="utf-8",
                            headers=_HEADERS)

    # -- pages ------------------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.Response:
        lang = self.lang(request)
        t = _t(lang)
        s = self.state
        now = s.clock()
        index = await self.fresh_index()
        checks = []
        for name, check in s.health.snapshot().items():
            cls, word = ("ok", t("ok")) if check["ok"] else ("bad", t("failing"))
            reason = "" if check["ok"] else f': {e(check["reason"])}'
            checks.append(f'<div class="card"><span class="muted">{e(name)}</span>'
                          f'<b class="{cls}">{e(word)}</b><span class="muted">{reason}'
                          f' {e(t("since"))} {e(_when(check["since"]))}</span></div>')
        refreshed = (f'{t("index_at")} {_when(s.refreshed)}' if s.refreshed
                     else t("index_never"))
        error = f' <span class="bad">{e(s.refresh_error)}</span>' if s.refresh_error else ""
        checks.append(f'<div class="card"><span class="muted">{e(t("index"))}</span>'
                      f'<b>{index.count()}</b><span class="muted">{e(refreshed)}</span>{error}'
                      "</div>")
        overdue = awaiting_receipt(index, s.overdue, now=now)
        letters = [f for f, replayed in index.dead_letters() if not replayed]
        stale = [n for n, when in crl_next_updates(s.crl_files) if when is None or when < now]
        expiring = [a for a, when in s.certificates.items() if when - now < timedelta(days=30)]
        counts = [(len(overdue), "n_overdue", "/awaiting"), (len(letters), "n_letters",
                                                             "/deadletters"),
                  (len(stale), "n_stale", "/agencies"), (len(expiring), "n_expiring",
                                                         "/agencies")]
        cards = "".join(
            f'<div class="card"><a href="{e(_url(path, lang))}"><b class="'
            f'{"bad" if n else "ok"}">{n}</b></a><span class="muted">{e(t(key))}</span></div>'
            for n, key, path in counts)
        rows = "".join(
            f"<tr><td>{e(_when(f.time))}</td><td>{e(t('sent') if f.kind == 'document.send' else t('arrived'))}</td>"
            f'<td><a href="{e(_url("/document", lang, q=f.document_id or ""))}">'
            f"{e(f.notation or f.document_id)}</a></td><td>{e(f.detail.get('subject', ''))}</td>"
            f"<td class=\"mono\">{e(f.detail.get('from', ''))}</td>"
            f"<td class=\"mono\">{e(', '.join(f.detail.get('to', [])))}</td></tr>"
            for f in index.recent_documents(20))
        table = (f"<table><tr><th>{e(t('time'))}</th><th>{e(t('kind'))}</th>"
                 f"<th>{e(t('notation'))}</th><th>{e(t('subject'))}</th><th>{e(t('from'))}</th>"
                 f"<th>{e(t('to'))}</th></tr>{rows}</table>") if rows else \
            f"<p>{e(t('none'))}</p>"
        body = (f"<h2>{e(t('checks'))}</h2><div class=\"cards\">{''.join(checks)}</div>"
                f"<h2>{e(t('counts'))}</h2><div class=\"cards\">{cards}</div>"
                f"<h2>{e(t('recent'))}</h2>{table}")
        return self.page(request, "/", "overview", body)

    async def document(self, request: web.Request) -> web.Response:
        lang = self.lang(request)
        t = _t(lang)
        query = request.query.get("q", "").strip()[:MAX_QUERY_CHARS]
        if not query:
            return self.page(request, "/document", "search",
                             f"<p>{e(t('search_hint'))}</p>")
        result = trace(await self.fresh_index(), query, self.state.clock(), lang)
        if not result.found:
            body = f"<p>{e(t('not_found'))} <code>{e(query)}</code>.</p>"
            return self.page(request, "/document", "search", body)
        state = result.state
        label = STATE_TEXT.get(state.state, (state.state, state.state))[LANGS.index(lang)]
        summary = summary_vi(state, self.state.clock()) if lang == "vi" else state.summary
        waiting = AWAITED_VI.get(state.awaited or "", state.awaited) if lang == "vi" \
            else state.awaited
        awaited = f"<br>{e(t('awaited'))}: {e(waiting)}" if waiting else ""
        receipts = ", ".join(f"{c} ({status_label(c)})" for c in state.receipts)
        receipts = f"<br>{e(t('receipts'))}: {e(receipts)}" if receipts else ""
        rows = "".join(
            f"<tr><td>{e(_when(f.time))}</td><td class=\"mono\">{e(f.source)}</td>"
            f"<td>{e(text)}</td></tr>" for f, text in result.lines)
        body = (f"<h2>{e(t('document'))} <span class=\"mono\">{e(', '.join(result.documents))}"
                f"</span></h2><div class=\"state\" id=\"state\" data-state=\"{e(state.state)}\">"
                f"<b>{e(t('state'))}: {e(label)}</b> — {e(summary)}{awaited}{receipts}"
                f"</div><h2>{e(t('timeline'))}</h2><table><tr><th>{e(t('time'))}</th>"
                f"<th>{e(t('source'))}</th><th>{e(t('what'))}</th></tr>{rows}</table>")
        return self.page(request, "/document", "document", body)

    async def awaiting(self, request: web.Request) -> web.Response:
        lang = self.lang(request)
        t = _t(lang)
        hours = self.state.overdue.total_seconds() / 3600
        rows = "".join(
            f"<tr><td>{e(_when(f.time))}</td><td>{e(ago)} {e(t('ago'))}</td>"
            f'<td><a href="{e(_url("/document", lang, q=f.document_id or ""))}">'
            f"{e(f.document_id)}</a></td><td class=\"mono\">{e(f.agency)}</td>"
            f"<td class=\"mono\">{e(f.axis_doc_id)}</td></tr>"
            for f, ago in awaiting_receipt(await self.fresh_index(), self.state.overdue,
                                           now=self.state.clock()))
        table = (f"<table><tr><th>{e(t('time'))}</th><th></th><th>{e(t('document'))}</th>"
                 f"<th>{e(t('from'))}</th><th>axis DocId</th></tr>{rows}</table>") if rows \
            else f"<p>{e(t('none'))}</p>"
        body = f"<h2>{e(t('awaiting'))}</h2><p>{e(t('overdue_intro'))} {hours:g} h.</p>{table}"
        return self.page(request, "/awaiting", "awaiting", body)

    async def deadletters(self, request: web.Request) -> web.Response:
        lang = self.lang(request)
        t = _t(lang)
        rows = "".join(
            f"<tr><td>{e(_when(f.time))}</td><td class=\"mono\">{e(f.reason)}</td>"
            f"<td>{e(f.detail.get('message', ''))}</td><td>{e(f.flow)}</td>"
            f'<td><a href="{e(_url("/document", lang, q=f.document_id or f.event_id or ""))}">'
            f"{e(f.document_id or f.event_id or f.axis_doc_id)}</a></td>"
            f"<td class=\"{'ok' if replayed else 'warn'}\">{e(t('yes') if replayed else t('no'))}"
            f"</td><td class=\"mono\">{e(f.detail.get('deadletter_id', ''))}</td></tr>"
            for f, replayed in (await self.fresh_index()).dead_letters())
        table = (f"<table><tr><th>{e(t('time'))}</th><th>{e(t('reason'))}</th>"
                 f"<th>{e(t('message'))}</th><th>flow</th><th>{e(t('document'))}</th>"
                 f"<th>{e(t('replayed'))}</th><th>id</th></tr>{rows}</table>") if rows \
            else f"<p>{e(t('none'))}</p>"
        body = (f"<h2>{e(t('deadletters'))}</h2>{table}<p>{e(t('replay_hint'))} "
                f"<code>{e(self.state.replay_hint)}</code></p>")
        return self.page(request, "/deadletters", "deadletters", body)

    async def agencies(self, request: web.Request) -> web.Response:
        lang = self.lang(request)
        t = _t(lang)
        s = self.state
        now = s.clock()
        traffic = (await self.fresh_index()).last_traffic()
        rows = []
        for organ_id, name in s.agencies:
            not_after = s.certificates.get(organ_id)
            days = (not_after - now).total_seconds() / 86400 if not_after else None
            cls = "" if days is None else "bad" if days < 7 else "warn" if days < 30 else "ok"
            rows.append(f"<tr><td class=\"mono\">{e(organ_id)}</td><td>{e(name)}</td>"
                        f"<td>{e(_when(not_after) if not_after else '-')}</td>"
                        f"<td class=\"{cls}\">{'-' if days is None else f'{days:.0f}'}</td>"
                        f"<td>{e(_when(traffic[organ_id]) if organ_id in traffic else '-')}"
                        "</td></tr>")
        crls = []
        for file_name, when in crl_next_updates(s.crl_files):
            if when is None:
                state, cls = t("unreadable"), "bad"
            else:
                state, cls = (t("fresh"), "ok") if when > now else (t("stale"), "bad")
            crls.append(f"<tr><td class=\"mono\">{e(file_name)}</td>"
                        f"<td>{e(_when(when) if when else '-')}</td>"
                        f"<td class=\"{cls}\">{e(state)}</td></tr>")
        body = (f"<h2>{e(t('agencies'))}</h2><table><tr><th>{e(t('agency'))}</th>"
                f"<th>{e(t('name'))}</th><th>{e(t('cert_expiry'))}</th>"
                f"<th>{e(t('days_left'))}</th><th>{e(t('last_traffic'))}</th></tr>"
                f"{''.join(rows)}</table><h2>{e(t('crls'))}</h2>"
                + (f"<table><tr><th>{e(t('crl_file'))}</th><th>{e(t('next_update'))}</th>"
                   f"<th>{e(t('state'))}</th></tr>{''.join(crls)}</table>" if crls
                   else f"<p>{e(t('none'))}</p>"))
        return self.page(request, "/agencies", "agencies", body)

    async def stylesheet(self, request: web.Request) -> web.Response:
        return web.Response(text=STYLESHEET, content_type="text/css", charset="utf-8",
                            headers=_HEADERS)

    async def favicon(self, request: web.Request) -> web.Response:
        return web.Response(text=FAVICON, content_type="image/svg+xml", headers=_HEADERS)


_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def _t(lang: str) -> Callable[[str], str]:
    i = LANGS.index(lang)
    return lambda key: TEXT[key][i]


def _url(path: str, lang: str, **query: str) -> str:
    return f"{path}?{urlencode({**query, 'lang': lang})}"


def _when(value: Any) -> str:
    """UTC time as `2026-12-02 09:14:03 UTC`."""
    if isinstance(value, str):
        from gateway.ops.index import parse_time

        parsed = parse_time(value)
        if parsed is None:
            return value
        value = parsed
    if not isinstance(value, datetime):
        return ""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


async def keep_index_fresh(state: ConsoleState, settings: Any, sources: Sequence[TopicSource],
                           stopping: asyncio.Event, *, every_s: float = 5.0,
                           watched_s: float = WATCHED_FOR_S) -> None:
    """Bring the index up to date from the topics whenever a page asks, and every `every_s`
    seconds while pages have been viewed in the last `watched_s` seconds, until `stopping` is
    set. Nobody looking, nothing is read: the topics are read in proportion to the traffic
    only for someone who uses the console. A failure is shown on the console and retried; it
    never stops the daemon."""
    fresh = state.freshness
    index = TraceIndex(state.index_path)
    fresh.running = True
    try:
        while not stopping.is_set():
            if fresh.wanted.is_set() or fresh.watched(watched_s):
                fresh.begin()
                try:
                    await index.update(settings, sources, idle_timeout_s=30)
                    state.refreshed, state.refresh_error = state.clock(), None
                except Exception as exc:  # noqa: BLE001 - the console is never worth a crash
                    state.refresh_error = f"{getattr(exc, 'reason', type(exc).__name__)}: " \
                                          f"{getattr(exc, 'message', str(exc))}"[:300]
                    log.warning("console.index_failed", error=state.refresh_error)
                finally:
                    fresh.end()
            await _first_of(stopping, fresh.wanted, timeout=every_s)
    finally:
        fresh.running = False
        index.close()


async def _first_of(*events: asyncio.Event, timeout: float) -> None:
    """Wait until one of `events` is set, or `timeout` seconds."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


__all__ = ["Console", "ConsoleState", "IndexFreshness", "STATE_TEXT", "TEXT",
           "crl_next_updates", "keep_index_fresh"]


def console_for(config: Any, health: Any) -> Console | None:
    """The console for a daemon's configuration, or None when `[http] console` keeps it off."""
    if not config.http.console_enabled:
        return None
    from gateway.ops.version import gateway_version

    index = config.http.console_index or Path(config.store.root) / "ops" / "trace-index.sqlite"
    first = f"--config {config.source}" if config.source else "--config gateway.toml"
    return Console(ConsoleState(
        index_path=index, health=health, version=gateway_version(),
        instance=config.gateway.instance_id,
        agencies=tuple((a.organ_id, a.name) for a in config.agencies),
        crl_files=tuple(config.inbound.crl_files),
        overdue=timedelta(seconds=config.http.receipt_overdue_seconds),
        replay_hint=f"edoc-gateway dlq replay {first} --id DEAD-LETTER-ID"))
