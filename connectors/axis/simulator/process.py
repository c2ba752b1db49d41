"""Run the axis simulator as a child process (for tests and benchmarks) and watch its memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO


class SimulatorProcess:
    """A simulator child process; `url` is the adapter endpoint, `admin_url` its admin root."""

    def __init__(self, popen: subprocess.Popen[bytes], port: int, scheme: str, host: str,
                 workdir: tempfile.TemporaryDirectory[str], log: IO[bytes] | None) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.port = port
        self.base_url = f"{scheme}://{host}:{port}"
        self.url = self.base_url + "/XrdAdapter/adapter"
        self.admin_url = self.base_url + "/admin"
        self._workdir = workdir
        self._log = log

    def peak_rss_bytes(self) -> int | None:
        """VmHWM of the live process (Linux), None where /proc is not available."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, SIGKILL if it does not stop; return the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self._log is not None:
            self._log.close()
        self._workdir.cleanup()
        return self.popen.returncode

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_simulator_process(*, db: str | os.PathLike[str], clients: Mapping[str, str],
                            seed: str | os.PathLike[str] | None = None,
                            extra_args: Sequence[str] = (), host: str = "127.0.0.1",
                            log_path: str | os.PathLike[str] | None = None,
                            startup_timeout: float = 20.0) -> SimulatorProcess:
    """Start `python -m connectors.axis.simulator` on a free port and wait until it listens.
    Secrets go through a private file, not the command line."""
    workdir = tempfile.TemporaryDirectory(prefix="axis-sim-")
    clients_file = Path(workdir.name) / "clients"
    fd = os.open(clients_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{systemid}:{secret}\n" for systemid, secret in clients.items())
    port_file = Path(workdir.name) / "port"
    cmd = [sys.executable, "-m", "connectors.axis.simulator", "--db", str(db), "--host", host,
           "--port", "0", "--port-file", str(port_file), "--clients-file", str(clients_file)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    cmd += list(extra_args)
    log = open(log_path, "ab") if log_path else None
    popen = subprocess.Popen(cmd, stdout=log or subprocess.DEVNULL,
                             stderr=subprocess.STDOUT if log else subprocess.DEVNULL)
    deadline = time.monotonic() + startup_timeout
    while not port_file.exists():
        if popen.poll() is not None or time.monotonic() > deadline:
            popen.kill()
            popen.wait()
            workdir.cleanup()
            raise RuntimeError(f"axis simulator did not start (exit code {popen.returncode})")
        time.sleep(0.05)
    port = int(port_file.read_text().strip())
    scheme = "https" if "--tls-cert" in extra_args else "http"
    return SimulatorProcess(popen, port, scheme, host, workdir, log)
