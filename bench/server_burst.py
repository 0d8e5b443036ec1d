"""A burst of plain HTTP clients at the scorer server: resets, errors and latency,
the stdlib's serving defaults and ours side by side in one run, on 127.0.0.1.

    python bench/server_burst.py                      # 200 clients x 5 rounds per setting, ~2.5 min
    python bench/server_burst.py --clients 200 --rounds 5 --timeout 30

Each setting serves a constant scorer (no model: the bench measures the HTTP layer)
through `rewards.server.ScorerServer` in a child process:
- "stdlib": listen backlog 5 and a thread per connection, unbounded (what the server
  had before: `ThreadingHTTPServer` defaults);
- "ours": the defaults of rewards/jsonhttp.py (backlog 1024, at most 256 workers).
A round starts `--clients` threads, each with its own new connection, held at a barrier
and released at once; each sends one POST /score and reads the reply. A client counts
as "reset" when the connection is refused, reset or closed with no reply, "timeout"
past --timeout (a connection the full backlog dropped: the kernel retries its SYN after
1, 3, 7, 15 s ...). Bounded: clients x rounds requests per setting, each under --timeout.
Prints one table and a JSON summary on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BODY = json.dumps({"problems": ["What is 2 + 3?"] * 2,
                   "solutions": [["2 + 3 = 5.", "The answer is 5."], ["It is 6."]]}).encode()
SETTINGS = {"stdlib": {"backlog": 5, "max_workers": 100_000}, "ours": {}}


class ConstantScorer:
    kind = "prm"

    def score(self, problems, solutions, **_):
        return [[0.5] * len(s) for s in solutions]


def serve(backlog: int | None, max_workers: int | None) -> None:
    """Child process: serve until stdin closes; print the port first."""
    sys.path.insert(0, ROOT)
    from rewards.server import ScorerServer

    kw = {k: v for k, v in (("backlog", backlog), ("max_workers", max_workers)) if v is not None}
    srv = ScorerServer(ConstantScorer(), host="127.0.0.1", port=0, **kw).start()
    print(srv.port, flush=True)
    sys.stdin.read()
    srv.stop()


def one_client(port: int, barrier: threading.Barrier, timeout: float, out: list) -> None:
    request = (f"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n").encode() + BODY
    try:
        barrier.wait(timeout)
    except threading.BrokenBarrierError:
        pass
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        if not data:
            out.append(("reset", time.perf_counter() - t0))
            return
        status = int(data.split(b" ", 2)[1])
        out.append(("ok" if status == 200 else f"http{status}", time.perf_counter() - t0))
    except (ConnectionError, BrokenPipeError):
        out.append(("reset", time.perf_counter() - t0))
    except TimeoutError:
        out.append(("timeout", time.perf_counter() - t0))
    except OSError as e:
        out.append((f"oserror:{e.errno}", time.perf_counter() - t0))


def burst(port: int, clients: int, timeout: float) -> list[tuple[str, float]]:
    out: list = []
    barrier = threading.Barrier(clients)
    threads = [threading.Thread(target=one_client, args=(port, barrier, timeout, out)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * 3)
    return out


def run_setting(name: str, clients: int, rounds: int, timeout: float) -> dict:
    kw = SETTINGS[name]
    cmd = [sys.executable, __file__, "--serve"]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        port = int(child.stdout.readline())
        results = []
        t0 = time.perf_counter()
        for _ in range(rounds):
            results += burst(port, clients, timeout)
        wall = time.perf_counter() - t0
    finally:
        child.stdin.close()
        child.wait(30)
    counts: dict = {}
    for kind, _ in results:
        counts[kind] = counts.get(kind, 0) + 1
    lat = sorted(t for k, t in results if k == "ok")
    pct = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1)) if lat else (lambda q: None)
    return {"setting": name, **({"backlog": 5, "max_workers": "unbounded"} if name == "stdlib" else
                                {"backlog": 1024, "max_workers": 256}),
            "requests": len(results), "counts": counts, "reset_share": counts.get("reset", 0) / max(1, len(results)),
            "p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None, "p99_ms": pct(0.99),
            "max_ms": pct(1.0), "wall_s": round(wall, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per client request")
    ap.add_argument("--settings", default="stdlib,ours")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--backlog", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--max-workers", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        serve(a.backlog, a.max_workers)
        return 0
    rows = [run_setting(s, a.clients, a.rounds, a.timeout) for s in a.settings.split(",")]
    print(f"{a.clients} concurrent clients x {a.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"{'setting':8} {'backlog':>7} {'workers':>9} {'requests':>8} {'ok':>6} {'reset':>6} {'timeout':>7} "
          f"{'other':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in rows:
        c = r["counts"]
        other = r["requests"] - c.get("ok", 0) - c.get("reset", 0) - c.get("timeout", 0)
        print(f"{r['setting']:8} {r['backlog']:>7} {r['max_workers']!s:>9} {r['requests']:>8} {c.get('ok', 0):>6} "
              f"{c.get('reset', 0):>6} {c.get('timeout', 0):>7} {other:>6} {r['p50_ms']!s:>8} {r['p99_ms']!s:>8} "
              f"{r['max_ms']!s:>8}")
    print(json.dumps({"clients": a.clients, "rounds": a.rounds, "results": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
