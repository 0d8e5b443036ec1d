"""`cli.py serve`: test-time search behind the OpenAI API, called with the official
`openai` client on loopback. The searches run on the scripted FakePolicy / FakeScorer
(search/testing.py) injected through `LocalSearch`; one engine test at the end."""

from __future__ import annotations

import http.client
import json
import threading

import pytest

from search.server import APIError, LocalSearch, SearchServer, parse_model, resolve_options
from search.testing import FakePolicy, FakeScorer, digit_scores

openai = pytest.importorskip("openai")

DEFAULTS = {"strategy": "beam", "n": 4, "beam_width": 2, "max_steps": 8, "agg": "min", "final_agg": None,
            "select": None, "seed": 0, "reward": "prm"}
PROBLEM = [{"role": "system", "content": "You are careful."}, {"role": "user", "content": "What is 1 + 0?"}]


def make_server(**kw) -> SearchServer:
    runner = LocalSearch(FakePolicy, {"prm": lambda: FakeScorer(digit_scores), "none": None})
    return SearchServer(runner, defaults=DEFAULTS, host="127.0.0.1", port=0, **kw).start()


@pytest.fixture(scope="module")
def server():
    srv = make_server(batch_window_s=0.2)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=30,
                         http_client=openai.DefaultHttpxClient(trust_env=False))


@pytest.mark.parametrize("name, expected", [
    ("tts-math", {}),
    ("beam-prm-min-n8", {"strategy": "beam", "reward": "prm", "agg": "min", "n": 8}),
    ("best-of-n-orm-last-n16", {"strategy": "best_of_n", "reward": "orm", "agg": "last", "n": 16}),
    ("weighted_majority-none-n8", {"strategy": "weighted_majority", "reward": "none", "n": 8}),
    ("dvts-prm-prod-n8-m4-steps5-seed3", {"strategy": "dvts", "reward": "prm", "agg": "prod", "n": 8,
                                          "beam_width": 4, "max_steps": 5, "seed": 3}),
    ("best_of_n-prm-window3-majority-final_last", {"strategy": "best_of_n", "reward": "prm", "agg": "window3",
                                                   "select": "majority", "final_agg": "last"}),
    ("mcts-tinyrm-softmin0.5-b64", {"strategy": "mcts", "reward": "tinyrm", "agg": "softmin0.5", "node_budget": 64}),
])
def test_model_names(name, expected):
    assert parse_model(name) == expected


@pytest.mark.parametrize("name, needle", [
    ("beam-foo-n8", "unknown part 'foo'"),
    ("beam-prm-verifier", "gold answer"),
    ("beam-dvts", "strategy twice"),
    ("", "non-empty"),
])
def test_bad_model_names(name, needle):
    with pytest.raises(APIError, match=needle):
        parse_model(name)


def test_options_layering_and_checks():
    config, reward, tree = resolve_options("best_of_n-none-n8", {"n": 2, "tree": True}, DEFAULTS, ("prm", "none"))
    assert (config.strategy, config.n, config.agg, reward, tree) == ("best_of_n", 2, "min", "none", True)
    with pytest.raises(APIError, match="not served here; this server serves prm, none"):
        resolve_options("beam-orm", None, DEFAULTS, ("prm", "none"))
    with pytest.raises(APIError, match="n must be a multiple of beam_width") as e:
        resolve_options("beam-n5", None, DEFAULTS, ("prm",))
    assert e.value.param == "search"
    with pytest.raises(APIError, match=r"unknown field\(s\) \['width'\]"):
        resolve_options("beam", {"width": 3}, DEFAULTS, ("prm",))


def test_chat_completion_is_the_chosen_solution(client):
    r = client.chat.completions.create(model="beam-prm-min-n4", messages=PROBLEM, temperature=0.3)
    ext = r.model_extra["search"]
    chosen = ext["candidates"][ext["chosen"]]
    assert r.choices[0].message.content == chosen["text"] and "The answer is" in chosen["text"]
    assert r.choices[0].finish_reason == "stop" and r.model == "beam-prm-min-n4"
    assert ext["answer"] == chosen["answer"] and ext["strategy"] == "beam" and ext["reward"] == "prm"
    assert ext["votes"] and all(c["scores"] for c in ext["candidates"])
    assert "temperature" in ext["ignored"] and "messages[0] (system)" in ext["ignored"]
    # usage counts every token the search spent, discarded beams included
    led = ext["ledger"]
    assert r.usage.completion_tokens == led["generated_tokens"] > sum(c["generated_tokens"] for c in ext["candidates"][:1])
    assert r.usage.prompt_tokens == led["prompt_tokens"] and r.usage.total_tokens == led["prompt_tokens"] + led["generated_tokens"]
    assert r.usage.prompt_tokens_details.cached_tokens == led["cached_tokens"]
    assert "tree" not in ext


def test_extra_body_and_seed(client):
    r = client.chat.completions.create(model="tts-math", messages=PROBLEM, seed=7,
                                       extra_body={"search": {"strategy": "best_of_n", "n": 3, "reward": "none",
                                                              "tree": True}})
    ext = r.model_extra["search"]
    assert ext["config"]["n"] == 3 and ext["config"]["seed"] == 7 and ext["reward"] == "none"
    assert len(ext["candidates"]) == 3 and "tree" in ext


def test_completions_several_prompts(client):
    r = client.completions.create(model="weighted_majority-none-n4", prompt=["What is 1 + 0?", "What is 2 + 0?"])
    assert [c.index for c in r.choices] == [0, 1] and all("The answer is" in c.text for c in r.choices)
    exts = r.model_extra["search"]
    assert len(exts) == 2 and r.usage.completion_tokens == sum(e["ledger"]["generated_tokens"] for e in exts)


def test_models(client, server):
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == "tts-math" and "beam-prm-min-n4-m2" in ids and "best_of_n-prm-min-n4" in ids
    assert client.models.retrieve("dvts-prm-last-n8").id == "dvts-prm-last-n8"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nonsense-model")


def test_streaming_returns_the_answer_in_one_chunk(client):
    plain = client.chat.completions.create(model="beam-prm-min-n4", messages=PROBLEM)
    chunks = list(client.chat.completions.create(model="beam-prm-min-n4", messages=PROBLEM, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    comp = list(client.completions.create(model="beam-prm-min-n4", prompt="What is 1 + 0?", stream=True))
    assert "".join(c.choices[0].text for c in comp) == text


@pytest.mark.parametrize("kwargs, exc, param", [
    ({"model": "beam-nonsense", "messages": PROBLEM}, "NotFoundError", "model"),
    ({"model": "beam", "messages": []}, "BadRequestError", "messages"),
    ({"model": "beam", "messages": [{"role": "assistant", "content": "hi"}]}, "BadRequestError", "messages"),
    ({"model": "beam", "messages": PROBLEM, "n": 2}, "BadRequestError", "n"),
    ({"model": "beam-n3", "messages": PROBLEM}, "BadRequestError", "search"),
    ({"model": "beam", "messages": PROBLEM, "extra_body": {"search": {"reward": "orm"}}}, "BadRequestError", "search"),
    ({"model": "beam-orm", "messages": PROBLEM}, "NotFoundError", "model"),
    ({"model": "beam", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "BadRequestError",
     "messages[0].content"),
])
def test_openai_shaped_errors(client, kwargs, exc, param):
    with pytest.raises(getattr(openai, exc)) as e:
        client.chat.completions.create(**kwargs)
    err = e.value.body
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["message"]


def _raw(server, method, path, body: bytes | None, headers=None):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    out = r.status, json.loads(r.read())
    conn.close()
    return out


@pytest.mark.parametrize("body, needle", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"messages": []}', "missing field 'model'"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_malformed_bodies_get_openai_shaped_400(server, body, needle):
    status, obj = _raw(server, "POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    assert status == 400 and needle in obj["error"]["message"] and obj["error"]["type"] == "invalid_request_error"


def test_unknown_path_and_health(server):
    status, obj = _raw(server, "POST", "/v1/embeddings", b"{}")
    assert status == 404 and obj["error"]["code"] == "not_found"
    assert _raw(server, "GET", "/health", None) == (200, {"status": "ok"})


def test_concurrent_requests_are_batched_and_answer_as_alone(server, client):
    prompts = [f"What is {i} + 0?" for i in range(6)]
    alone = {p: client.chat.completions.create(model="beam-prm-min-n4", messages=[{"role": "user", "content": p}])
             for p in prompts[:2]}
    calls0 = server.batcher.calls
    out: dict = {}

    def ask(p):
        out[p] = client.chat.completions.create(model="beam-prm-min-n4", messages=[{"role": "user", "content": p}])

    threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 6
    assert server.batcher.calls - calls0 < 6  # arrived within the window: fewer search calls than requests
    for p in prompts[:2]:
        assert out[p].choices[0].message.content == alone[p].choices[0].message.content


def test_bearer_token():
    srv = make_server(api_key="s3cret")
    try:
        mk = lambda key: openai.OpenAI(base_url=srv.url, api_key=key, max_retries=0, timeout=30,  # noqa: E731
                                       http_client=openai.DefaultHttpxClient(trust_env=False))
        with pytest.raises(openai.AuthenticationError) as e:
            mk("wrong").chat.completions.create(model="beam", messages=PROBLEM)
        assert e.value.body["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            mk("wrong").models.list()
        assert mk("s3cret").chat.completions.create(model="beam", messages=PROBLEM).choices[0].message.content
        assert _raw(srv, "GET", "/health", None)[0] == 200  # health needs no key
    finally:
        srv.stop()


def test_search_failure_is_a_500_and_the_server_keeps_serving():
    def boom(p, s):
        if "boom" in p:
            raise RuntimeError("scorer exploded")
        return [0.5] * len(s)

    runner = LocalSearch(FakePolicy, {"prm": lambda: FakeScorer(boom)})
    srv = SearchServer(runner, defaults=DEFAULTS, port=0, batch_window_s=0).start()
    try:
        c = openai.OpenAI(base_url=srv.url, api_key="x", max_retries=0, timeout=30,
                          http_client=openai.DefaultHttpxClient(trust_env=False))
        with pytest.raises(openai.InternalServerError, match="scorer exploded"):
            c.chat.completions.create(model="beam", messages=[{"role": "user", "content": "boom"}])
        assert c.chat.completions.create(model="beam", messages=PROBLEM).choices[0].message.content
    finally:
        srv.stop()


def test_serve_help_and_bad_options_without_an_engine():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "cli.py", "serve", "--help"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0 and "--batch-window-ms" in r.stdout
    for argv, needle in ((["--rewards", "verifier"], "gold answer"),
                         (["--strategy", "beam", "--n", "5"], "multiple of beam_width"),
                         (["--backend", "ray", "--rewards", "prm"], "one reward kind")):
        r = subprocess.run([sys.executable, "cli.py", "serve", *argv], cwd=root, capture_output=True, text=True)
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_build_runner_builds_nothing_until_warm():
    import cli
    from search.server import build_runner

    args = cli.build_parser().parse_args(["serve", "--reward", "none", "--rewards", "prm,none"])
    runner = build_runner(args)
    assert isinstance(runner, LocalSearch) and runner.rewards == ("none", "prm")
    assert runner._policy is None and runner._scorers == {}  # no engine, no scorer loaded


@pytest.mark.engine
def test_serve_on_the_real_engine(engine_policy):
    """The lead runs this one: one beam search over the real CPU engine through the server."""
    runner = LocalSearch(lambda: engine_policy, {"none": None})
    srv = SearchServer(runner, defaults=dict(DEFAULTS, reward="none", max_steps=3), port=0).start()
    try:
        c = openai.OpenAI(base_url=srv.url, api_key="x", max_retries=0, timeout=600,
                          http_client=openai.DefaultHttpxClient(trust_env=False))
        r = c.chat.completions.create(model="beam-none-min-n4", messages=[{"role": "user", "content": "What is 2 + 3?"}])
        ext = r.model_extra["search"]
        assert r.choices[0].message.content and len(ext["candidates"]) >= 1
        assert r.usage.completion_tokens == ext["ledger"]["generated_tokens"] > 0
    finally:
        srv.stop()
