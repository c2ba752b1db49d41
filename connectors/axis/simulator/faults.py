"""Decide which simulated failures hit a request: latency, 5xx/429, timeouts, resets, outages.

A fault plan is a list of rules, each with a kind, a rate (probability per matching request,
drawn from one seeded RNG so a run can be replayed), an optional list of operations it applies to
and an optional count (how many more times it may fire). It is set at start-up from CLI flags and
replaced at run time through the admin endpoint (JSON, same fields).

Kinds:
  latency        delay the answer by `ms`
  error          answer HTTP `status` (default 503) with the axis's JSON error shape
  timeout        hold the request `seconds` (default 30), longer than a client's read timeout
  reset          reset the connection mid-body: while reading the upload of sendEdoc and
                 registerAgency, while writing the answer otherwise (`at` = request|response)
  outage         every request fails with 503 from `start` (unix time; or `start_in` seconds
                 from now) for `duration` seconds
  lose_response  perform the call (e.g. store the sent message), then drop the connection
  bad_response   answer HTTP 200 with a body that is not JSON
  gzip           compress the answer with gzip (Content-Encoding), as a proxy in front of the
                 axis may; only when the request's Accept-Encoding allows gzip
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

KINDS = ("latency", "error", "timeout", "reset", "outage", "lose_response", "bad_response",
         "gzip")

_FIELDS = {"kind", "rate", "operations", "count", "ms", "status", "seconds", "start",
           "start_in", "duration", "at"}


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class FaultRule:
    kind: str
    rate: float = 1.0
    operations: tuple[str, ...] = ()      # empty: every API operation
    count: int | None = None              # remaining firings; None: unlimited
    ms: float = 0.0
    status: int = 503
    seconds: float = 30.0
    start: float | None = None
    duration: float = 0.0
    at: str | None = None

    def applies_to(self, operation: str) -> bool:
        return not self.operations or operation in self.operations

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "rate": self.rate,
                               "operations": list(self.operations), "count": self.count}
        if self.kind == "latency":
            out["ms"] = self.ms
        elif self.kind == "error":
            out["status"] = self.status
        elif self.kind == "timeout":
            out["seconds"] = self.seconds
        elif self.kind == "outage":
            out.update(start=self.start, duration=self.duration)
        elif self.kind == "reset":
            out["at"] = self.at
        return out


def rule_from_json(spec: Mapping[str, Any], *, now: float) -> FaultRule:
    if not isinstance(spec, Mapping):
        raise FaultSpecError("a fault rule is a JSON object")
    unknown = set(spec) - _FIELDS
    if unknown:
        raise FaultSpecError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"fault kind must be one of {', '.join(KINDS)}")
    try:
        ops = spec.get("operations") or ()
        if isinstance(ops, str):
            ops = [o for o in ops.replace("+", ",").split(",") if o]
        rule = FaultRule(
            kind=kind,
            rate=float(spec.get("rate", 1.0)),
            operations=tuple(str(o) for o in ops),
            count=None if spec.get("count") is None else int(spec["count"]),
            ms=float(spec.get("ms", 0.0)),
            status=int(spec.get("status", 503)),
            seconds=float(spec.get("seconds", 30.0)),
            start=None if spec.get("start") is None else float(spec["start"]),
            duration=float(spec.get("duration", 0.0)),
            at=None if spec.get("at") is None else str(spec["at"]),
        )
    except (TypeError, ValueError) as exc:
        raise FaultSpecError(f"bad value in fault rule: {exc}") from None
    if spec.get("start_in") is not None:
        try:
            rule = replace(rule, start=now + float(spec["start_in"]))
        except (TypeError, ValueError):
            raise FaultSpecError("start_in must be a number of seconds") from None
    if not 0.0 <= rule.rate <= 1.0:
        raise FaultSpecError("rate must be between 0 and 1")
    if rule.kind == "outage" and (rule.start is None or rule.duration <= 0):
        raise FaultSpecError("an outage needs start (or start_in) and a positive duration")
    if rule.kind == "error" and not 400 <= rule.status <= 599:
        raise FaultSpecError("error status must be an HTTP 4xx or 5xx code")
    if rule.at not in (None, "request", "response"):
        raise FaultSpecError("at must be request or response")
    if rule.count is not None and rule.count < 0:
        raise FaultSpecError("count cannot be negative")
    return rule


def parse_cli_fault(text: str, *, now: float) -> FaultRule:
    """`KIND[:key=value,...]`, e.g. `error:rate=0.2,status=503,operations=sendEdoc+getEdoc`."""
    kind, _, rest = text.partition(":")
    spec: dict[str, Any] = {"kind": kind.strip()}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise FaultSpecError(f"fault option {item!r} is not key=value")
        spec["operations" if key.strip() == "ops" else key.strip()] = value.strip()
    return rule_from_json(spec, now=now)


@dataclass
class Decision:
    """What happens to one request."""

    latency_s: float = 0.0
    outage: bool = False
    error_status: int | None = None
    timeout_s: float | None = None
    reset_at: str | None = None
    lose_response: bool = False
    bad_response: bool = False
    gzip: bool = False
    fired: list[str] = field(default_factory=list)


class FaultInjector:
    def __init__(self, rules: Iterable[FaultRule] = (), *, seed: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._rules = list(rules)
        self._seed = seed
        self._rng = random.Random(seed)

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        return tuple(self._rules)

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Replace the plan with `{"seed": int|null, "rules": [...]}`."""
        if not isinstance(spec, Mapping):
            raise FaultSpecError("fault plan must be a JSON object")
        unknown = set(spec) - {"seed", "rules"}
        if unknown:
            raise FaultSpecError(f"unknown field(s): {', '.join(sorted(unknown))}")
        rules_spec = spec.get("rules") or []
        if not isinstance(rules_spec, list):
            raise FaultSpecError("rules must be a list")
        now = self._clock()
        rules = [rule_from_json(r, now=now) for r in rules_spec]
        seed = spec.get("seed")
        if seed is not None and not isinstance(seed, int):
            raise FaultSpecError("seed must be an integer")
        self._rules, self._seed, self._rng = rules, seed, random.Random(seed)

    def state(self) -> dict[str, Any]:
        return {"seed": self._seed, "rules": [r.as_json() for r in self._rules]}

    def decide(self, operation: str, *, default_reset_at: str = "response") -> Decision:
        decision = Decision()
        now = self._clock()
        for index, rule in enumerate(self._rules):
            if not rule.applies_to(operation) or rule.count == 0:
                continue
            if rule.kind == "outage":
                assert rule.start is not None
                if not rule.start <= now < rule.start + rule.duration:
                    continue
            elif self._rng.random() >= rule.rate:
                continue
            if rule.count is not None:
                self._rules[index] = replace(rule, count=rule.count - 1)
            decision.fired.append(rule.kind)
            if rule.kind == "latency":
                decision.latency_s += rule.ms / 1000.0
            elif rule.kind == "outage":
                decision.outage = True
            elif rule.kind == "error" and decision.error_status is None:
                decision.error_status = rule.status
            elif rule.kind == "timeout":
                decision.timeout_s = max(decision.timeout_s or 0.0, rule.seconds)
            elif rule.kind == "reset":
                decision.reset_at = rule.at or default_reset_at
            elif rule.kind == "lose_response":
                decision.lose_response = True
            elif rule.kind == "bad_response":
                decision.bad_response = True
            elif rule.kind == "gzip":
                decision.gzip = True
        return decision
