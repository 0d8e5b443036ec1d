"""A small pool of sandboxed worker processes with per-request deadlines.

No signals are used: the caller waits on a Pipe with `poll(timeout)`, which works in
any thread (servers, thread pools, notebooks). A worker that overruns its deadline is
killed (SIGKILL) and a fresh one is spawned on the next request, so the calling process
never hangs on sympy. Workers use the 'spawn' start method, which is safe next to
torch / vLLM threads. The pool is created lazily on first use, never at import.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import threading
import time

__all__ = ["WorkerPool", "get_pool", "shutdown_pool"]

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 120.0


class _Worker:
    def __init__(self) -> None:
        from verifiers._worker import worker_main

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=worker_main, args=(child,), daemon=True,
                                name="verifiers-worker")
        self.proc.start()
        child.close()
        if not self.conn.poll(_START_TIMEOUT_S):
            self.kill()
            raise RuntimeError(
                f"verifiers worker did not start within {_START_TIMEOUT_S:.0f}s; "
                "check that `python -c 'import sympy'` works in this environment."
            )
        msg = self.conn.recv()
        if not (isinstance(msg, tuple) and msg[0] == "ready"):
            self.kill()
            raise RuntimeError(f"verifiers worker sent {msg!r} instead of 'ready'")

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(timeout=5)
        except (OSError, ValueError):
            pass
        try:
            self.conn.close()
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.conn.send(None)
            self.proc.join(timeout=2)
        except (OSError, ValueError, BrokenPipeError):
            pass
        if self.proc.is_alive():
            self.kill()
        else:
            self.conn.close()


class WorkerPool:
    """Up to `max_workers` worker processes; `run` is thread-safe and never hangs."""

    def __init__(self, max_workers: int) -> None:
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}.")
        self.max_workers = max_workers
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._alive = 0
        self._closed = False
        self.killed = 0  # workers killed for overrunning (for tests and benchmarks)

    def resize(self, max_workers: int) -> None:
        with self._cond:
            self.max_workers = max(1, int(max_workers))
            self._cond.notify_all()

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("verifiers worker pool is shut down")
                if self._idle:
                    return self._idle.pop()
                if self._alive < self.max_workers:
                    self._alive += 1
                    break
                self._cond.wait()
        try:
            return _Worker()
        except BaseException:
            with self._cond:
                self._alive -= 1
                self._cond.notify()
            raise

    def _release(self, w: _Worker) -> None:
        with self._cond:
            if self._closed or self._alive > self.max_workers:
                self._alive -= 1
                w.close()
            else:
                self._idle.append(w)
            self._cond.notify()

    def _discard(self, w: _Worker) -> None:
        w.kill()
        with self._cond:
            self._alive -= 1
            self._cond.notify()

    def run(self, payload: tuple, timeout_s: float) -> tuple[str, str]:
        """Send `payload` to a worker; (status, detail), or ("timeout", ...) past the deadline."""
        w = self._acquire()
        t0 = time.monotonic()
        try:
            w.conn.send(payload)
            if w.conn.poll(timeout_s):
                result = w.conn.recv()
                self._release(w)
                return result
        except (EOFError, OSError) as e:
            self._discard(w)
            code = w.proc.exitcode
            log.warning("verifiers worker died (exit code %s): %s", code, e)
            return "timeout", f"worker died (exit code {code}); likely out of memory"
        except BaseException:
            self._discard(w)  # KeyboardInterrupt etc.: never leave a busy worker in the pool
            raise
        self._discard(w)
        self.killed += 1
        log.info("verifiers worker killed after %.2fs (limit %.2fs)", time.monotonic() - t0,
                 timeout_s)
        return "timeout", f"no verdict within {timeout_s:g}s; worker killed and replaced"

    def shutdown(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._alive -= len(idle)
            self._cond.notify_all()
        for w in idle:
            w.close()


_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


def _default_workers() -> int:
    env = os.environ.get("VERIFIERS_WORKERS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(
                f"VERIFIERS_WORKERS must be an integer >= 1, got {env!r}. Unset it or use e.g. 2."
            ) from None
        if n < 1:
            raise ValueError(f"VERIFIERS_WORKERS must be >= 1, got {n}. Unset it or use e.g. 2.")
        return n
    return max(1, min(4, os.cpu_count() or 1))


def get_pool() -> WorkerPool:
    """The process-wide pool, created on first use (never at import)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._closed:
            _POOL = WorkerPool(_default_workers())
            atexit.register(_POOL.shutdown)
        return _POOL


def shutdown_pool() -> None:
    """Stop all idle workers now (a later call to `get_pool` starts a new pool)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown()
            _POOL = None
