"""The local broker's own helpers (deploy/kafka/localkafka.py) that need no broker."""

from __future__ import annotations

import socket

from gateway.lab import load_localkafka


def test_a_broker_port_is_free_and_below_the_range_the_kernel_gives_outgoing_connections() -> None:
    # A restarted broker keeps the ports of its formatted state; a port in the ephemeral range
    # may meanwhile be taken by any client socket, and the broker then cannot start again.
    localkafka = load_localkafka()
    low, _high = localkafka._ephemeral_range()
    ports = {localkafka._free_port("127.0.0.1") for _ in range(20)}
    assert all(1024 <= port < low for port in ports)
    assert len(ports) > 1
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))


def test_a_port_in_use_is_not_handed_out(monkeypatch) -> None:
    localkafka = load_localkafka()
    low, _high = localkafka._ephemeral_range()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        # Every candidate is the taken port but the last: the taken one is skipped.
        candidates = iter([taken] * 5)

        class Rng:
            def randrange(self, a: int, b: int) -> int:
                return next(candidates, low - 1)

        monkeypatch.setattr(localkafka.random, "SystemRandom", Rng)
        assert localkafka._free_port("127.0.0.1") == low - 1
