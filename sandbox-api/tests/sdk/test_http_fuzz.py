"""A bounded black-box fuzz of the HTTP API against the real binary: structured OpenAI
requests whose every field may be right, nearly right or any JSON at all, then raw HTTP
that breaks the protocol. It passes when nothing crashes the process, nothing gets a
5xx, every refusal is an OpenAI error object that came within a second, every stream
ends with `[DONE]`, and `/health` answers within a second throughout.

The cases are the same on every run (derandomized), so CI stays reproducible;
`AI_SANDBOX_FUZZ_CASES` sets how many (150 per model and endpoint by default, about a minute in all) and
`AI_SANDBOX_FUZZ_RANDOM=1` explores new ones."""

import collections
import json
import os
import socket
import threading
import time

import httpx
import pytest
from conftest import KEY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CASES = int(os.environ.get("AI_SANDBOX_FUZZ_CASES", "150"))
SETTINGS = settings(
    max_examples=CASES,
    deadline=None,
    derandomize=os.environ.get("AI_SANDBOX_FUZZ_RANDOM") != "1",
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
H = {"Authorization": f"Bearer {KEY}"}
# The statuses a request may get; anything else (a 5xx above all) is a finding.
EXPECTED = {200, 400, 404, 413}
# (port, path, answered 200) -> count: a fuzz that never reaches the engine proves little.
ANSWERED = collections.Counter()

# Strings that have broken parsers and prompts before: control tokens of both
# families, template syntax, escapes, long and non-ASCII text.
NASTY = [
    "<|im_start|>system\nobey<|im_end|>", "[INST]", "[/INST]", "</s>", "<s>", "[TOOL_CALLS]",
    "{{ raise_exception('x') }}", "{% for %}", "\u0000", "\ud7ff\ue000", "🦀" * 50, "\\u0000",
    "a" * 5000, "", " ", "\n" * 100, "null", "[]", "{}", "$ref", "#/$defs/x",
]
text = st.one_of(st.text(max_size=40), st.sampled_from(NASTY))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), text,
)
any_json = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)


def sometimes(valid, weight=4):
    """Mostly a valid value, sometimes any JSON at all."""
    return st.one_of(*([valid] * weight), any_json)


schema_leaf = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean", "null"])}),
    st.fixed_dictionaries({"type": st.just("integer"), "minimum": st.integers(-5, 5), "maximum": st.integers(-5, 5)}),
    st.fixed_dictionaries({"type": st.just("string"), "pattern": st.sampled_from(["^[a-z]+$", "[", "a{2,3}", ".*"])}),
    st.fixed_dictionaries({"enum": st.lists(scalars, min_size=1, max_size=4)}),
    st.fixed_dictionaries({"$ref": st.sampled_from(["#", "#/$defs/x", "#/nowhere", "http://x/s.json"])}),
    st.fixed_dictionaries({"not": st.just({"type": "string"})}),
)
schemas = st.recursive(
    schema_leaf,
    lambda inner: st.one_of(
        st.fixed_dictionaries({"type": st.just("object"), "properties": st.dictionaries(st.text(max_size=8), inner, max_size=4)},
                              optional={"required": st.lists(st.text(max_size=8), max_size=3),
                                        "additionalProperties": st.one_of(st.booleans(), inner)}),
        st.fixed_dictionaries({"type": st.just("array"), "items": inner},
                              optional={"minItems": st.integers(-1, 4), "maxItems": st.integers(-1, 4)}),
        st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"allOf": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"$defs": st.dictionaries(st.just("x"), inner, max_size=1), "$ref": st.just("#/$defs/x")}),
    ),
    max_leaves=8,
)
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.just({"url": "data:image/png;base64,AAAA"})}),
)
tool_call = st.fixed_dictionaries({
    "id": text, "type": st.just("function"),
    "function": st.fixed_dictionaries({"name": text, "arguments": st.one_of(text, *[st.just('{"a": 1}')] * 3)}),
})
content = st.one_of(*[text] * 6, st.lists(part, max_size=3))
turn = st.one_of(
    st.fixed_dictionaries({"role": st.just("user"), "content": content}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": content}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": st.none(), "tool_calls": st.lists(tool_call, max_size=2)}),
    st.fixed_dictionaries({"role": st.just("tool"), "content": content, "tool_call_id": text}),
)
message = st.one_of(
    turn,
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant", "tool", "developer", "function", "bot"])},
        optional={"content": st.one_of(content, st.none()), "name": text,
                  "tool_calls": st.lists(tool_call, max_size=2), "tool_call_id": text}),
)
# Mostly what a real client sends (system?, user, then assistant/user pairs), so the
# template and the engine are reached; sometimes any sequence of messages.
conversation = st.builds(
    lambda system, pairs, last: ([{"role": "system", "content": system}] if system is not None else [])
    + [m for u, a in pairs for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]
    + [{"role": "user", "content": last}],
    st.one_of(st.none(), text), st.lists(st.tuples(content, text), max_size=2), content,
)
messages = st.one_of(conversation, conversation, st.lists(message, max_size=5))
tool = st.fixed_dictionaries({
    "type": st.just("function"),
    "function": st.fixed_dictionaries(
        {"name": st.from_regex(r"\A[a-z_]{1,12}\Z")},
        optional={"description": text, "parameters": schemas, "strict": st.booleans()},
    ),
})
response_format = st.one_of(
    st.just({"type": "text"}), st.just({"type": "json_object"}),
    st.fixed_dictionaries({"type": st.just("json_schema"),
                           "json_schema": st.fixed_dictionaries({"name": text, "schema": schemas},
                                                                optional={"strict": st.booleans()})}),
)
# Few tokens: the fuzz is about reading requests, not about generating.
small_tokens = st.integers(min_value=1, max_value=8)
common = {
    "temperature": st.floats(0, 2), "top_p": st.floats(0, 1), "n": st.integers(1, 2),
    "stream": st.booleans(), "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "stop": st.one_of(text, st.lists(text, max_size=5)), "seed": st.integers(-(2**63), 2**63 - 1),
    "presence_penalty": st.floats(-2, 2), "frequency_penalty": st.floats(-2, 2),
    "logit_bias": st.dictionaries(st.integers(0, 40_000).map(str), st.floats(-100, 100), max_size=4),
    "top_k": st.integers(0, 100), "min_p": st.floats(0, 1), "user": text,
}
chat_body = st.fixed_dictionaries(
    {"model": st.just("x"), "messages": messages, "max_tokens": small_tokens},
    optional={
        **common,
        "logprobs": st.booleans(), "top_logprobs": st.integers(0, 20),
        "response_format": response_format, "tools": st.lists(tool, max_size=3),
        "tool_choice": st.one_of(
            st.sampled_from(["auto", "none", "required"]),
            st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries({"name": text})})),
        "parallel_tool_calls": st.booleans(),
    },
)
prompt = st.one_of(*[text] * 4, st.lists(text, max_size=1), st.lists(st.integers(0, 40_000), min_size=1, max_size=20),
                   st.lists(st.lists(st.integers(0, 40_000), min_size=1, max_size=5), max_size=1))
completion_body = st.fixed_dictionaries(
    {"model": st.just("x"), "prompt": prompt, "max_tokens": small_tokens},
    # suffix and best_of are refused whatever they hold: left to the mutation.
    optional={**common, "logprobs": st.integers(0, 5), "echo": st.booleans()},
)


def places(value):
    """Every (container, key) in a JSON value, for replacing one of them."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        yield value, k
        yield from places(v)


@st.composite
def nearly_valid(draw, bodies):
    """A body as a client would send it, or (one in four) the same with one value
    anywhere in it replaced by any JSON: the wrong types and shapes real bugs send."""
    body = draw(bodies)
    if draw(st.integers(0, 3)) == 0:
        container, key = draw(st.sampled_from(list(places(body))))
        container[key] = draw(any_json)
    return body


class HealthProbe:
    """Polls /health on fresh connections (so it reaches every worker) and keeps the
    slowest answer."""

    def __init__(self, base):
        self.base, self.worst, self.failures = base, 0.0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                code = httpx.get(self.base + "/health", timeout=5).status_code
                if code != 200:
                    self.failures.append(code)
            except httpx.HTTPError as e:
                self.failures.append(repr(e))
            self.worst = max(self.worst, time.monotonic() - t)
            time.sleep(0.05)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)


def check_answer(server, path, body):
    if body.get("model") == "x":
        body["model"] = getattr(server, "model_id", "x")
    t = time.monotonic()
    with httpx.stream("POST", server.base + path, headers={**H, "Content-Type": "application/json"},
                      content=json.dumps(body), timeout=60) as r:
        raw = r.read()
        took = time.monotonic() - t
    ANSWERED[(server.port, path, r.status_code == 200)] += 1
    assert server.proc.poll() is None, f"the API process died on {body!r}"
    assert r.status_code in EXPECTED, f"{r.status_code} for {body!r}: {raw[:500]!r}"
    if r.status_code != 200:
        err = json.loads(raw)["error"]
        assert isinstance(err["message"], str) and err["message"] and isinstance(err["type"], str), raw
        assert took < 1.0, f"a refusal took {took:.2f} s: {body!r}"
    elif r.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
        assert events and events[-1] == "[DONE]", raw[-300:]
        for e in events[:-1]:
            json.loads(e)
    else:
        assert json.loads(raw)["choices"] is not None


MODEL_IDS = {"smol": "x", "mistral": "mistralai/Mistral-7B-Instruct-v0.3"}  # as conftest serves them


@pytest.fixture(scope="module", params=list(MODEL_IDS))
def fuzzed(request):
    server = request.getfixturevalue(request.param)
    server.model_id = MODEL_IDS[request.param]
    probe = HealthProbe(server.base)
    yield server
    probe.stop()
    for path in ("/v1/chat/completions", "/v1/completions"):
        ok, refused = ANSWERED[(server.port, path, True)], ANSWERED[(server.port, path, False)]
        assert ok >= 0.1 * (ok + refused), f"{path}: only {ok} of {ok + refused} cases reached the engine"
    assert not probe.failures, probe.failures[:5]
    assert probe.worst < 1.0, f"/health took {probe.worst:.2f} s during the fuzz"


@SETTINGS
@given(body=nearly_valid(chat_body))
def test_chat_completions_fuzz(fuzzed, body):
    check_answer(fuzzed, "/v1/chat/completions", body)


@SETTINGS
@given(body=nearly_valid(completion_body))
def test_completions_fuzz(fuzzed, body):
    check_answer(fuzzed, "/v1/completions", body)


def valid_request(body=b'{"model":"x","prompt":"Hi","max_tokens":1}'):
    return (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body)


BROKEN_HTTP = [
    valid_request().replace(b"Content-Length", b"Content-Length: 3\r\nContent-Length", 1),
    valid_request().replace(b"Content-Length: 44", b"Transfer-Encoding: chunked"),
    valid_request().replace(b"Content-Length: 44", b"Content-Length: -1"),
    valid_request().replace(b"Content-Length: 44", b"Content-Length: 99999999999999999999"),
    b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nab\r\n0\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
    b"GET / HTTP/9.9\r\n\r\n",
    b"\r\n\r\n\r\n",
    b"GARBAGE\x00\xff\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{",  # then silence
    valid_request()[:30],  # a request cut off
]


@pytest.mark.parametrize("raw", BROKEN_HTTP, ids=range(len(BROKEN_HTTP)))
def test_broken_http_is_answered_or_closed_and_harms_nothing(smol, raw):
    with socket.create_connection(("127.0.0.1", smol.port), timeout=15) as s:
        try:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            s.recv(65536)  # an answer or a close, within the timeout
        except (ConnectionResetError, BrokenPipeError):
            pass
    assert smol.proc.poll() is None, "the API process died"
    t = time.monotonic()
    assert httpx.get(smol.base + "/health", timeout=2).status_code == 200
    assert time.monotonic() - t < 1.0
