"""Serve the daemon's operational endpoints: /metrics, /healthz and /readyz.

- `/metrics`: the Prometheus text exposition of the daemon's registry.
- `/healthz`: 200 as long as the event loop answers (liveness: restart the process if not).
- `/readyz`: 200 when every readiness check the daemon registered passes ("kafka", "axis",
  "keys", ...), else 503 with a JSON body naming the failing checks and why (readiness: send
  no traffic, but do not restart).

    health = HealthState(["kafka", "axis", "keys"])        # all failing until set
    server = await start_http_server(registry, health, host="127.0.0.1", port=9464)
    health.set_ok("kafka")
    health.set_failed("axis", "axis.unavailable: HTTP 503")
    ...
    await server.stop()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

MAX_REASON_CHARS = 200
NOT_CHECKED = "not checked yet"


@dataclass(frozen=True)
class CheckState:
    ok: bool
    reason: str | None
    since: datetime


class HealthState:
    """Readiness checks by name, each ok or failed with a short reason.

    The daemon owns it and updates it from the tasks that see each dependency; the HTTP
    handler only reads it. Reasons must be short and free of secrets (they are served).
    """

    def __init__(self, checks: Iterable[str] = ()) -> None:
        self._checks: dict[str, CheckState] = {}
        for name in checks:
            self.register(name)

    def register(self, name: str) -> None:
        """Add a check that fails until it is set ok."""
        if name not in self._checks:
            self._checks[name] = CheckState(False, NOT_CHECKED, datetime.now(timezone.utc))

    def set(self, name: str, ok: bool, reason: str | None = None) -> None:
        """Set a check (registering it if new); the time changes only when the state does."""
        reason = None if ok else (reason or "failed")[:MAX_REASON_CHARS]
        current = self._checks.get(name)
        if current is not None and current.ok == ok and current.reason == reason:
            return
        since = current.since if current is not None and current.ok == ok \
            else datetime.now(timezone.utc)
        self._checks[name] = CheckState(ok, reason, since)

    def set_ok(self, name: str) -> None:
        self.set(name, True)

    def set_failed(self, name: str, reason: str) -> None:
        self.set(name, False, reason)

    @property
    def ready(self) -> bool:
        """True when every registered check passes (and vacuously with none registered)."""
        return all(state.ok for state in self._checks.values())

    def failing(self) -> dict[str, str]:
        return {name: state.reason or "failed" for name, state in self._checks.items()
                if not state.ok}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: {"ok": state.ok, "reason": state.reason,
                       "since": state.since.isoformat().replace("+00:00", "Z")}
                for name, state in sorted(self._checks.items())}


def make_app(registry: CollectorRegistry, health: HealthState, *,
             setup: Callable[[web.Application], None] | None = None) -> web.Application:
    """The aiohttp application (also usable with aiohttp's test client); `setup` adds more
    routes (the status console, `gateway.ops.console`)."""

    async def metrics(request: web.Request) -> web.Response:
        # OpenMetrics when the scraper asks for it (Prometheus does, by Accept), else text 0.0.4.
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(registry), headers={"Content-Type": content_type})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        if health.ready:
            return web.json_response({"status": "ready", "checks": health.snapshot()})
        return web.json_response({"status": "not ready", "failing": health.failing(),
                                  "checks": health.snapshot()}, status=503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if setup is not None:
        setup(app)
    return app


@dataclass(frozen=True)
class HttpServer:
    """A running endpoint server; `port` is the bound port (useful with port 0)."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_http_server(registry: CollectorRegistry, health: HealthState, *,
                            host: str = "127.0.0.1", port: int = 0,
                            setup: Callable[[web.Application], None] | None = None
                            ) -> HttpServer:
    """Serve the endpoints on host:port (port 0: any free port; see `HttpServer.port`)."""
    # No access log: probes every few seconds would drown the daemon's own events.
    runner = web.AppRunner(make_app(registry, health, setup=setup), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    return HttpServer(runner, host, int(bound[1]))


async def stop_http_server(server: HttpServer) -> None:
    await server.stop()


__all__ = ["CheckState", "HealthState", "HttpServer", "make_app", "start_http_server",
           "stop_http_server"]
