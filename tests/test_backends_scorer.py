"""The scorer server and RemoteScorer: a scripted scorer served on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from rewards.base import NoneScorer, Scorer
from rewards.server import RemoteScorer, RemoteScorerError, ScorerServer, parse_request

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LengthScorer(Scorer):
    """Step score = min(1, len(step) / 100); slow enough that concurrent calls overlap."""

    kind = "prm"
    granularity = "step"

    def __init__(self, delay: float = 0.05):
        super().__init__()
        self.delay = delay
        self.active = 0
        self.max_active = 0

    def _score(self, problems, solutions, *, golds, references):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        time.sleep(self.delay)
        self.stats.tokens_scored += sum(len(p.split()) + sum(len(s.split()) for s in sol)
                                        for p, sol in zip(problems, solutions, strict=True))
        self.active -= 1
        return [[min(1.0, len(s) / 100) for s in sol] for sol in solutions]


@pytest.fixture
def served():
    servers = []

    def make(scorer):
        s = ScorerServer(scorer, host="127.0.0.1", port=0).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def post(url, body: bytes, headers=None):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers=headers or {"Content-Type": "application/json"})
    try:
        with OPENER.open(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_remote_scores_equal_local_and_stats_add_up(served):
    local, remote_side = LengthScorer(0), LengthScorer(0)
    srv = served(remote_side)
    rs = RemoteScorer(srv.url)
    probs = ["What is 2 + 3?", "What is 2 + 3?", "x"]
    sols = [["2 + 3 = 5.", "The answer is 5."], ["It is 6."], []]
    assert rs.score(probs, sols) == local.score(probs, sols) == [[0.1, 0.16], [0.08], []]
    assert rs.kind == "prm" and rs.granularity == "step" and not rs.needs_golds
    assert rs.stats.calls == 1 and rs.stats.candidates == 3 and rs.stats.steps == 3
    assert rs.stats.tokens_scored == local.stats.tokens_scored > 0
    from search.ledger import read_scorer_stats

    assert read_scorer_stats(rs)["tokens"] == local.stats.tokens_scored


def test_concurrent_clients_each_get_their_own_answers(served):
    scorer = LengthScorer(delay=0.02)
    srv = served(scorer)
    results, errors = {}, []

    def client(i):
        try:
            rs = RemoteScorer(srv.url)
            steps = [["x" * (i + j) for j in range(3)] for _ in range(4)]
            for _ in range(3):
                got = rs.score([f"p{i}"] * 4, steps)
                assert got == [[min(1.0, (i + j) / 100) for j in range(3)]] * 4
            results[i] = rs.stats.calls
        except Exception as e:  # collected: an assert in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results == {i: 3 for i in range(8)}
    assert srv.requests == 24 and scorer.stats.calls == 24
    assert scorer.max_active == 1  # score() calls ran one at a time on the model


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"problems": ["a"]}', "missing field 'solutions'"),
        (b'{"problems": ["a"], "steps": [["s"]]}', "'steps' is called 'solutions'"),
        (b'{"problems": "a", "solutions": [["s"]]}', "'problems' must be a list of strings"),
        (b'{"problems": ["a"], "solutions": ["one string"]}', "solutions[0] must be a list of step strings"),
        (b'{"problems": ["a", "b"], "solutions": [["s"]]}', "2 problems and 1 solutions"),
        (b'{"problems": ["a"], "solutions": [["s"]], "golds": "5"}', "'golds' must be a list of 1 strings"),
        ("{\"problems\": [\"\u00e9\"]}".encode("latin-1"), "not UTF-8"),
    ],
)
def test_malformed_requests_get_400_with_a_clear_message(served, body, fragment):
    srv = served(LengthScorer(0))
    code, out = post(srv.url + "/score", body)
    assert code == 400 and fragment in out["error"], out
    with pytest.raises(Exception, match="solutions"):  # the same checks, as a function
        parse_request(b'{"problems": []}')


def test_other_errors_and_info(served):
    srv = served(NoneScorer(0.25))
    assert post(srv.url + "/nope", b"{}")[0] == 404
    code, out = post(srv.url + "/score", b"x" * 10, headers={"Content-Type": "application/json",
                                                              "Content-Length": str(2**30)})
    assert code == 413 and "limit" in out["error"]
    with OPENER.open(srv.url + "/info", timeout=10) as r:
        info = json.loads(r.read())
    assert info["kind"] == "none" and info["granularity"] == "step" and "stats" in info
    with OPENER.open(srv.url + "/health", timeout=10) as r:
        assert json.loads(r.read()) == {"status": "ok"}
    # the verifier needs golds: the scorer's own check comes back as a 400 and a ValueError
    from rewards.oracle import VerifierScorer

    v = served(VerifierScorer(max_workers=1))
    rv = RemoteScorer(v.url)
    assert rv.needs_golds
    with pytest.raises(ValueError, match="needs gold answers"):
        rv.score(["1+1?"], [["The answer is 2."]])
    assert rv.score(["1+1?"], [["The answer is 2."]], golds=["2"]) == [[1.0]]


def test_unreachable_server_is_a_clear_error_after_retries():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rs = RemoteScorer(f"http://127.0.0.1:{port}", retry_timeout_s=0.5)
    with pytest.raises(RemoteScorerError, match="serve-scorer"):
        rs.score(["a"], [["b"]])
    assert rs.stats.retries >= 1
    with pytest.raises(ValueError, match="http"):
        RemoteScorer("127.0.0.1:8100")


def test_search_with_a_remote_scorer_equals_a_local_one(served):
    from search import best_of_n
    from search.config import SearchConfig
    from search.testing import FakePolicy

    probs = [{"id": str(i), "problem": f"problem {i}", "answer": "1"} for i in range(3)]
    cfg = SearchConfig(strategy="best_of_n", n=4, seed=0)
    srv = served(LengthScorer(0))
    remote = best_of_n(probs, FakePolicy(), RemoteScorer(srv.url), cfg)
    local = best_of_n(probs, FakePolicy(), LengthScorer(0), cfg)
    assert [r.as_dict()["candidates"] for r in remote] == [r.as_dict()["candidates"] for r in local]
    assert [r.ledger.scorer_tokens for r in remote] == [r.ledger.scorer_tokens for r in local]


def test_serve_scorer_cli_arguments():
    import argparse

    from rewards import server

    p = argparse.ArgumentParser()
    server.add_arguments(p)
    a = p.parse_args(["--reward", "none", "--port", "0"])
    assert a.host == "127.0.0.1" and a.reward == "none"


# ---- hardening (issue 19): malformed bodies, a burst of clients -------------------------

def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int | None, dict | None]:
    """Send bytes on a fresh connection; (status, JSON body) of the reply, (None, None) when
    the server closed the connection without one."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head + body)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data:
        return None, None
    status_line, _, rest = data.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2] if status_line.startswith(b"HTTP/") else data
    return (int(status_line.split()[1]) if status_line.startswith(b"HTTP/") else None), json.loads(payload)


def _post_head(body: bytes, extra: str = "") -> bytes:
    return (f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            f"{extra}\r\n").encode()


@pytest.mark.parametrize(
    "body, code, fragment",
    [
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),  # closed the connection before
        (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, 400, "nested too deeply"),
        (b'{"problems": [' + b"9" * 5000 + b'], "solutions": [[]]}', 400, "more than 4300 digits"),  # same
        (b'{"problems": [1], "solutions": [["a"]]}', 400, "'problems' must be a list of strings"),
        (b'{"problems": ["a"], "solutions": [[1]]}', 400, "solutions[0] must be a list of step strings"),
        (b'{"problems": ["a"], "solutions": {"x": 1}}', 400, "'solutions' must be a list"),
        (b'{"problems": ["a"], "solutions": [["a"]], "golds": [null]}', 400, "'golds' must be a list"),
        (b'{"problems": ["\xff\xfe"], "solutions": [["a"]]}', 400, "not UTF-8"),
        (b"\xef\xbb\xbf{}", 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
        (b" " * (2 * 2**20), 413, "exceeds the server's limit"),
    ],
)
def test_every_malformed_body_gets_a_json_4xx(served, body, code, fragment):
    srv = ScorerServer(LengthScorer(0), host="127.0.0.1", port=0, max_body_mb=1).start()
    try:
        got, out = raw_request(srv.port, _post_head(body), body)
        assert got == code and fragment in out["error"], (got, out)
        # and the server still answers
        ok = b'{"problems": ["a"], "solutions": [["abc"]]}'
        code2, out2 = raw_request(srv.port, _post_head(ok), ok)
        assert code2 == 200 and out2["scores"] == [[0.03]]
    finally:
        srv.stop()


def test_malformed_http_gets_json_errors_too(served):
    srv = served(LengthScorer(0))
    assert raw_request(srv.port, b"POST /score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 411
    code, out = raw_request(srv.port, b"POST /score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                            b"5\r\nhello\r\n0\r\n\r\n")
    assert code == 411 and "Content-Length" in out["error"]
    code, out = raw_request(srv.port, b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", b"{}")
    assert code == 400 and "ended after 2 of 100 bytes" in out["error"]
    code, out = raw_request(srv.port, b"PUT /score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert code == 501 and "PUT" in out["error"]
    code, out = raw_request(srv.port, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert code == 404 and "/health" in out["error"]


def test_a_burst_of_200_plain_clients_gets_no_resets(served):
    """200 clients, each on a new connection, released at once (the stdlib's listen
    backlog of 5 reset 5-32% of them)."""
    import socket

    srv = served(LengthScorer(0))
    body = b'{"problems": ["a"], "solutions": [["abc"]]}'
    n, results = 200, []
    barrier = threading.Barrier(n)

    def client():
        try:
            barrier.wait(30)
            with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as s:
                s.sendall(_post_head(body) + body)
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            results.append(data.split(b" ", 2)[1] if data else b"closed")
        except OSError as e:
            results.append(type(e).__name__)

    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results.count(b"200") == n, {r: results.count(r) for r in set(results)}
    assert srv.httpd.request_queue_size >= n and srv.httpd.max_workers >= n
