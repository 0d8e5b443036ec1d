"""A small pool of sandboxed worker processes with one deadline per request.

No signals are used: the caller waits on a Pipe with `poll(timeout)`, which works in
any thread (servers, thread pools, notebooks). A worker that overruns its deadline is
killed (SIGKILL) and a fresh one is started in the background, so the calling process
never hangs on sympy. The deadline of a request covers its wait for a free worker too,
and the pool grows (up to `VERIFIERS_MAX_WORKERS`, default min(16, 4 x the base size))
while threaded callers would otherwise queue behind a slow comparison. Workers are fresh interpreters (`python -m verifiers._worker`),
like the 'spawn' start method but without re-importing the caller's __main__; nothing
is forked, so this is safe next to torch / vLLM threads. The pool is created lazily on
first use, never at import.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

__all__ = ["WorkerPool", "get_pool", "shutdown_pool"]

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 120.0
_MAX_STARTING = 2
_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Worker:
    """One child process `python -m verifiers._worker`, talking over two OS pipes.

    A plain subprocess rather than multiprocessing's 'spawn': it never re-imports the
    caller's __main__ (scripts without a main guard, stdin, notebooks and servers all
    work) and it shares no threads or locks with the parent (safe next to torch/vLLM).
    """

    def __init__(self) -> None:
        c_read, p_write = os.pipe()  # parent -> child
        p_read, c_write = os.pipe()  # child -> parent
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [_PKG_PARENT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "verifiers._worker", str(c_read), str(c_write)],
                pass_fds=(c_read, c_write), env=env, stdin=subprocess.DEVNULL,
                close_fds=True, cwd=_PKG_PARENT,
            )
        finally:
            os.close(c_read)
            os.close(c_write)
        self.tx = Connection(p_write, readable=False)
        self.rx = Connection(p_read, writable=False)
        if not self.rx.poll(_START_TIMEOUT_S):
            self.kill()
            raise RuntimeError(
                f"verifiers worker did not start within {_START_TIMEOUT_S:.0f}s; "
                "check that `python -c 'import sympy'` works in this environment."
            )
        try:
            msg = self.rx.recv()
        except EOFError:
            code = self.proc.poll()
            self.kill()
            raise RuntimeError(
                f"verifiers worker exited during start-up (exit code {code}); run "
                "`python -m verifiers._worker` to see its error."
            ) from None
        if not (isinstance(msg, tuple) and msg[0] == "ready"):
            self.kill()
            raise RuntimeError(f"verifiers worker sent {msg!r} instead of 'ready'")

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll()

    def kill(self, wait: bool = True) -> None:
        """SIGKILL the worker. With wait=False the caller does not wait for the exit (a
        killed process can take a while to go on a loaded machine): subprocess reaps it
        at a later Popen, so a caller past its deadline returns at once."""
        try:
            self.proc.kill()
            if wait:
                self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for c in (self.__dict__.get("tx"), self.__dict__.get("rx")):
            if c is not None:
                try:
                    c.close()
                except OSError:
                    pass

    def retire(self) -> None:
        """Ask the worker to exit and return at once (it exits on reading None)."""
        try:
            self.tx.send(None)
        except (OSError, ValueError):
            self.kill(wait=False)
            return
        for c in (self.tx, self.rx):
            try:
                c.close()
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.tx.send(None)
            self.proc.wait(timeout=2)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self.kill()


class WorkerPool:
    """Worker processes with one deadline per request; `run` is thread-safe, never hangs.

    `max_workers` processes are kept; when callers in other threads find them all busy,
    the pool grows up to `grow_to` so that a quick request never queues behind a slow
    one, and the extra workers exit when they fall idle with nobody waiting. Workers are
    started by (at most _MAX_STARTING) background threads and killed workers are not
    waited for: a caller waits for a worker only until its deadline, and returns as
    soon as it passes.
    """

    def __init__(self, max_workers: int, grow_to: int | None = None) -> None:
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}.")
        self.max_workers = max_workers
        self.grow_to = max(max_workers, grow_to if grow_to is not None else max_workers)
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._alive = 0  # started or starting
        self._starting = 0
        self._queue: collections.deque[int] = collections.deque()  # tickets of waiting callers
        self._next_ticket = 0
        self._spawn_error: str | None = None
        self._spawn_q: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._starters = 0
        self._closed = False
        self.killed = 0  # workers killed for overrunning (for tests and benchmarks)
        self.peak = 0  # most workers alive at once (for tests and benchmarks)

    def resize(self, max_workers: int) -> None:
        with self._cond:
            self.max_workers = max(1, int(max_workers))
            self.grow_to = max(self.grow_to, self.max_workers)
            self._cond.notify_all()

    def prestart(self) -> None:
        """Start one worker in the background now, so the first request finds it warm."""
        with self._cond:
            if self._alive == 0 and not self._closed:
                self._spawn_locked()

    def _spawn_locked(self) -> None:
        self._alive += 1
        self._starting += 1
        self.peak = max(self.peak, self._alive)
        # a long-lived starter thread picks the request up: the caller only enqueues
        # (Thread.start() itself can block a starved caller for a long time)
        self._spawn_q.put(True)
        if self._starters < _MAX_STARTING:
            self._starters += 1
            threading.Thread(target=self._starter, name="verifiers-start", daemon=True).start()

    def _starter(self) -> None:
        while self._spawn_q.get():
            self._spawn()

    def _spawn(self) -> None:
        try:
            w = _Worker()
        except BaseException as e:  # noqa: BLE001 - reported to the waiting callers
            with self._cond:
                self._alive -= 1
                self._starting -= 1
                self._spawn_error = str(e) or type(e).__name__
                self._cond.notify_all()
            return
        with self._cond:
            self._starting -= 1
            self._spawn_error = None
            if self._closed:
                self._alive -= 1
            else:
                self._idle.append(w)
                self._cond.notify_all()
                return
        w.close()

    def _acquire(self, deadline: float) -> _Worker | None:
        """An idle worker, or None once `deadline` (time.monotonic) has passed.

        First come, first served: a caller takes a free worker only when nobody who
        arrived earlier is still waiting, so a thread that returns a worker and asks
        again at once cannot starve the others."""
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._queue.append(ticket)
            try:
                while True:
                    if self._closed:
                        raise RuntimeError("verifiers worker pool is shut down")
                    if self._idle and self._queue[0] == ticket:
                        return self._idle.pop()
                    if self._spawn_error is not None and self._alive == 0:
                        raise RuntimeError(self._spawn_error)
                    # every live worker is busy or starting: one more per waiting caller,
                    # at most _MAX_STARTING at a time (a start costs a second of CPU; a
                    # storm of them starves the callers' own deadlines on a small machine)
                    waiting = len(self._queue) - len(self._idle)
                    if (self._alive < self.grow_to
                            and self._starting < min(waiting, _MAX_STARTING)):
                        self._spawn_locked()
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cond.wait(remaining)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may take a free worker now

    def _release(self, w: _Worker) -> None:
        with self._cond:
            surplus = self._alive > self.max_workers and not self._queue
            if self._closed or surplus:
                self._alive -= 1
            else:
                self._idle.append(w)
                self._cond.notify_all()
                return
        w.retire()

    def _discard(self, w: _Worker) -> None:
        w.kill(wait=False)
        with self._cond:
            self._alive -= 1
            if not self._closed and self._alive < self.max_workers:
                self._spawn_locked()  # a warm replacement for the next request
            self._cond.notify_all()

    def run(self, payload: tuple, timeout_s: float, *,
            deadline: float | None = None) -> tuple[str, str]:
        """Send `payload` to a worker; (status, detail), or ("timeout", ...) past the deadline.

        `deadline` (a time.monotonic() value, default now + timeout_s) covers everything:
        the wait for a free or starting worker and the comparison itself.
        """
        t0 = time.monotonic()
        if deadline is None:
            deadline = t0 + timeout_s
        w = self._acquire(deadline)
        if w is None:
            return "timeout", (f"no worker free within the {timeout_s:g}s deadline "
                               f"(waited {time.monotonic() - t0:.2f}s)")
        try:
            w.tx.send(payload)
            if w.rx.poll(max(0.0, deadline - time.monotonic())):
                result = w.rx.recv()
                self._release(w)
                return result
        except (EOFError, OSError) as e:
            self._discard(w)
            code = w.exitcode
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
            for _ in range(self._starters):
                self._spawn_q.put(False)  # the starter threads exit after pending starts
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


def _grow_to(base: int) -> int:
    env = os.environ.get("VERIFIERS_MAX_WORKERS")
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"VERIFIERS_MAX_WORKERS must be an integer >= 1, got {env!r}. "
                             "Unset it or use e.g. 8.")
        return max(base, n)
    return max(base, min(16, 4 * base))


def get_pool() -> WorkerPool:
    """The process-wide pool, created on first use (never at import)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._closed:
            base = _default_workers()
            _POOL = WorkerPool(base, grow_to=_grow_to(base))
            _POOL.prestart()
            atexit.register(_POOL.shutdown)
        return _POOL


def shutdown_pool() -> None:
    """Stop all idle workers now (a later call to `get_pool` starts a new pool)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown()
            _POOL = None
