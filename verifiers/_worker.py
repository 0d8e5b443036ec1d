"""Entry point of a sandboxed comparison worker: `python -m verifiers._worker RFD WFD`.

Protocol over two OS pipes wrapped in multiprocessing Connections: the worker sends ("ready", pid) once sympy is
imported, then answers each (gold, answer, cfg) request with (status, detail); None
asks it to exit. The parent enforces deadlines by killing the process.
"""

from __future__ import annotations

import os
import signal
import sys


def _limit_memory() -> None:
    limit_gb = float(os.environ.get("VERIFIERS_WORKER_MEM_GB", "4"))
    if limit_gb <= 0:
        return
    try:
        import resource

        cap = int(limit_gb * 2**30)
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > cap:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, ValueError, OSError):  # not on this platform: the deadline still holds
        pass


def worker_main(rx, tx) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent
    sys.setrecursionlimit(10000)
    _limit_memory()
    from verifiers.symbolic import compare

    try:
        tx.send(("ready", os.getpid()))
    except OSError:  # the pool gave up on us (its process is exiting): nothing to do
        return
    while True:
        try:
            msg = rx.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        gold, answer, cfg = msg
        try:
            result = compare(gold, answer, cfg)
        except MemoryError:
            result = ("timeout", "worker ran out of memory")
        except RecursionError:
            result = ("unparsable", "expression too deeply nested")
        except Exception as e:  # a sympy bug must not kill the worker; report it, never "wrong"
            result = ("unparsable", f"internal error {type(e).__name__}: {e}"[:300])
        try:
            tx.send(result)
        except (EOFError, OSError):
            return


if __name__ == "__main__":
    from multiprocessing.connection import Connection

    if len(sys.argv) != 3:
        sys.exit("usage: python -m verifiers._worker READ_FD WRITE_FD (started by verifiers.pool)")
    worker_main(Connection(int(sys.argv[1]), writable=False),
                Connection(int(sys.argv[2]), readable=False))
