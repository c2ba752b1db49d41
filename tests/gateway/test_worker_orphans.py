"""A worker process does not outlive the gateway that started it.

When the gateway is killed (SIGKILL, the OOM killer) its pool cannot stop its workers; a worker
left behind would keep the agencies' signing keys loaded in memory with nobody to answer to.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

PARENT = textwrap.dedent("""
    import os, sys
    from gateway.work import WorkerSetup, make_pool

    pool = make_pool(WorkerSetup(keys=()), 1)
    print(pool.submit(os.getpid).result(timeout=60), flush=True)
    sys.stdin.read()      # until the test kills this process
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_exits_when_its_gateway_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    try:
        assert _alive(worker)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the worker outlived its killed parent"
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


LATE = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from gateway import work

    class Gone:                 # the process that started this one, already dead
        pid = int(sys.argv[1])

    multiprocessing.parent_process = lambda: Gone()
    work._exit_with_parent(0.1)
    time.sleep(30)
    sys.exit(3)
""")


def test_a_worker_whose_gateway_died_while_it_started_exits() -> None:
    """Killed while its worker was still importing: by the time the worker watches, it has been
    re-parented already, and must still see that its gateway is gone."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    started = time.monotonic()
    late = subprocess.run([sys.executable, "-c", LATE, str(gone.pid)], timeout=60)
    assert late.returncode == 0 and time.monotonic() - started < 20
