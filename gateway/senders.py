"""Remember which senders sign: a compacted topic, one entry per sender and package kind.

Once a package from a sender has arrived with a valid signature by that sender's own
certificate, later packages of the same kind from it must be signed too: an unsigned or
placeholder-signed one is a downgrade (`signature.downgrade`), not a sender that never signs.
Documents and status packages are remembered apart (`edoc/000.00.00.H55`,
`status/000.00.00.H55`): software that signs its documents may still send its receipts through
the reference library, which writes none. The memory lives in a compacted Kafka topic owned by
the gateway (`[topics] senders`), so it survives restarts and is shared by every instance; the
poller reloads it when it takes the poller lease. Only the first valid signature of a sender
and kind is written.

Senders never seen signing keep the default policy: the real axis carries unsigned receipts and
placeholder-signed documents from the reference libraries, and they must keep flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from connectors.kafka import KafkaSettings, iter_topic

Send = Callable[[bytes, bytes], Awaitable[Any]]


class SigningSenders:
    """In-memory view of the senders topic plus acknowledged writes to it."""

    def __init__(self, settings: KafkaSettings | None, topic: str | None, send: Send | None) -> None:
        self._settings = settings
        self._topic = topic
        self._send = send
        self._known: dict[str, dict[str, Any]] = {}
        self._learning: dict[str, asyncio.Future[None]] = {}   # writes in flight, by key

    def signs(self, organ_id: str, kind: str) -> bool:
        """Whether a valid signature of this kind ("edoc" or "status") has come from it."""
        return _key(organ_id, kind) in self._known

    def __len__(self) -> int:
        return len(self._known)

    async def reload(self) -> None:
        """Read the whole topic (compacted: one entry per sender) into memory."""
        if self._settings is None or self._topic is None:
            return
        known: dict[str, dict[str, Any]] = {}
        async for record in iter_topic(self._settings, self._topic):
            if record.key is None:
                continue
            key = record.key.decode("utf-8", "replace")
            if record.value is None:
                known.pop(key, None)
                continue
            try:
                entry = json.loads(record.value)
            except ValueError:
                entry = {}
            known[key] = entry if isinstance(entry, dict) else {}
        # Learned while reading: keep it.
        for key, entry in self._known.items():
            known.setdefault(key, entry)
        self._known = known

    async def learn(self, organ_id: str, kind: str, *, axis_doc_id: str,
                    signer_serial: str | None) -> bool:
        """Remember that `organ_id` signs packages of `kind`; True if it was new (and is now
        acknowledged by Kafka)."""
        key = _key(organ_id, kind)
        # Two packages of a new signing sender in one batch: the second waits for the first's
        # write instead of writing the entry again (and writes it if the first failed).
        while (running := self._learning.get(key)) is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(running)
        if key in self._known:
            return False
        entry = {"organ_id": organ_id, "kind": kind, "first_valid": time.time(),
                 "axis_doc_id": axis_doc_id, "signer_serial": signer_serial}
        self._learning[key] = writing = asyncio.get_running_loop().create_future()
        try:
            if self._send is not None:
                await self._send(key.encode(), json.dumps(entry, separators=(",", ":")).encode())
            self._known[key] = entry
        finally:
            del self._learning[key]
            writing.set_result(None)
        return True


def _key(organ_id: str, kind: str) -> str:
    return f"{'status' if kind == 'status' else 'edoc'}/{organ_id}"
