"""Command line of the axis simulator: `edoc-gateway axis-sim ...` or `python -m connectors.axis.simulator`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import structlog

from connectors.axis.auth import parse_timestamp
from connectors.axis.simulator.faults import FaultSpecError, parse_cli_fault
from connectors.axis.simulator.server import BANNER, SimulatorConfig, serve

log = structlog.get_logger("connectors.axis.simulator")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = f"{BANNER}. Serves the axis API on loopback for tests and demos."
    parser.add_argument("--db", required=True, type=Path,
                        help="SQLite file of the simulator's state (created if missing)")
    parser.add_argument("--data-dir", type=Path,
                        help="directory for package files (default: <db>.files)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0,
                        help="port to listen on (default 0: any free port, see --port-file)")
    parser.add_argument("--port-file", type=Path,
                        help="write the port actually bound to this file once listening")
    parser.add_argument("--client", action="append", default=[], metavar="SYSTEMID:SECRET",
                        help="a systemid allowed to call, with its shared secret (repeatable)")
    parser.add_argument("--clients-file", type=Path,
                        help="file of SYSTEMID:SECRET lines (keeps secrets off the command line)")
    parser.add_argument("--seed", type=Path,
                        help="agency directory JSON (default: the bundled sample directory)")
    parser.add_argument("--timestamp-window", type=float, default=300.0, metavar="SECONDS",
                        help="refuse requests whose signed timestamp is further than this "
                             "from the simulator's clock (default 300)")
    parser.add_argument("--max-timestamp-age", type=float, default=86400.0, metavar="SECONDS",
                        help="not --strict: also accept a signed timestamp up to this old, as "
                             "the reference client reuses one for minutes (default 86400)")
    parser.add_argument("--strict", action="store_true",
                        help="accept only the written description's wire form (standard hex "
                             "hash-file of the exact body, comma-separated to, GET for the "
                             "count calls, the timestamp window both ways) and refuse a "
                             "replayed signature: for proving a client that sends that form")
    parser.add_argument("--clock", metavar="TIMESTAMP",
                        help="freeze the simulator's clock at this moment (ddMMyyyy'T'HHmmss+SSSS "
                             "in Vietnam time, or ISO 8601 with a zone), e.g. to replay "
                             "captured requests with their own timestamps")
    parser.add_argument("--gzip-answers", action="store_true",
                        help="gzip every answer whose request accepts it (as a proxy may)")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND[:k=v,...]",
                        help="initial fault rule, e.g. error:rate=0.2,status=503,ops=sendEdoc "
                             "(repeatable; see docs/axis-simulator.md)")
    parser.add_argument("--fault-seed", type=int, help="seed of the fault RNG (reproducible runs)")
    parser.add_argument("--trace-organ-id",
                        help="OrganId of the TraceHeader appended on relay "
                             "(default: the sender's systemid)")
    parser.add_argument("--max-upload-bytes", type=int, default=4 * 1024 ** 3)
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", help="key of --tls-cert, if not in the same file")
    parser.add_argument("--tls-client-ca", help="require client certificates issued by this CA")


def fixed_moment(text: str) -> datetime:
    """`--clock`: an axis timestamp (Vietnam time) or an ISO 8601 moment with its zone."""
    try:
        return parse_timestamp(text.strip())
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--clock {text!r} is neither ddMMyyyy'T'HHmmss+SSSS "
                         "nor ISO 8601") from None
    if moment.tzinfo is None:
        raise ValueError(f"--clock {text!r} needs a zone (e.g. +07:00)")
    return moment


def _parse_client(text: str) -> tuple[str, str]:
    systemid, sep, secret = text.strip().partition(":")
    if not sep or not systemid or not secret:
        raise ValueError(f"client {text.split(':', 1)[0]!r} is not SYSTEMID:SECRET")
    return systemid, secret


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    entries = list(args.client)
    if args.clients_file:
        entries += [line for line in args.clients_file.read_text("utf-8").splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    clients = dict(_parse_client(entry) for entry in entries)
    if not clients:
        raise ValueError("give at least one --client SYSTEMID:SECRET (or --clients-file)")
    now = time.time()
    faults = tuple(parse_cli_fault(text, now=now) for text in args.fault)
    extra = {}
    if args.clock:
        frozen = fixed_moment(args.clock)
        extra["clock"] = lambda: frozen
    return SimulatorConfig(
        **extra, strict=args.strict, gzip_answers=args.gzip_answers,
        max_timestamp_age=args.max_timestamp_age,
        db_path=args.db, clients=clients, host=args.host, port=args.port,
        data_dir=args.data_dir, seed_path=args.seed, timestamp_window=args.timestamp_window,
        faults=faults, fault_seed=args.fault_seed, trace_organ_id=args.trace_organ_id,
        max_upload_bytes=args.max_upload_bytes, tls_cert=args.tls_cert, tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca)


async def _run(config: SimulatorConfig, port_file: Path | None) -> None:
    running = await serve(config)
    print(f"{BANNER}: listening on {running.url} (admin {running.admin_url})",
          file=sys.stderr, flush=True)
    if port_file is not None:
        tmp = port_file.with_name(port_file.name + ".tmp")
        tmp.write_text(f"{running.port}\n")
        tmp.replace(port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await running.close()


def run(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM; 0 on a clean stop, 2 on a configuration error."""
    try:
        config = config_from_args(args)
    except (ValueError, OSError, FaultSpecError) as exc:
        print(f"axis-sim: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(config, args.port_file))
    except OSError as exc:
        print(f"axis-sim: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="axis-sim")
    add_arguments(parser)
    return run(parser.parse_args(argv))
