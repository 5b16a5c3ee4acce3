"""The official openai SDK, unmodified, pointed at sandbox-api with only base_url and api_key."""

import json

import httpx
import jsonschema
import openai
import pytest
from conftest import FIXTURES, KEY, Server

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            # Enumerations keep the random-weight test model's constrained output short.
            "properties": {
                "city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}


def client(server, key=KEY, **kw):
    return openai.OpenAI(base_url=server.base + "/v1", api_key=key, max_retries=0, **kw)


def user(text):
    return [{"role": "user", "content": text}]


def test_models_list_and_retrieve(smol):
    c = client(smol)
    models = c.models.list().data
    assert [m.id for m in models] == ["smollm2-135m-instruct"]
    assert models[0].owned_by == "ai-sandbox" and models[0].created > 0
    assert c.models.retrieve("smollm2-135m-instruct").id == "smollm2-135m-instruct"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("no-such-model")


def test_chat_plain_with_usage(smol):
    r = client(smol).chat.completions.create(
        model="gpt-4o-mini", messages=user("What is the capital of France? Answer in one word."), max_tokens=16, temperature=0
    )
    assert r.model == "smollm2-135m-instruct"  # the real id, whatever was asked for
    assert r.object == "chat.completion"
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streamed_role_first_usage_last(smol):
    stream = client(smol).chat.completions.create(
        model="x",
        messages=user("Count to five."),
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text) > 3
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_stream_equals_non_stream_greedy(smol):
    c = client(smol)
    args = dict(model="x", messages=user("Name a fruit."), max_tokens=12, temperature=0)
    plain = c.chat.completions.create(**args).choices[0].message.content
    streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(stream=True, **args) if ch.choices)
    assert plain == streamed


def test_a_cut_off_answer_continues_where_it_stopped(smol):
    c = client(smol)
    ask = user("Describe the sea in three sentences.")
    full = c.chat.completions.create(model="x", messages=ask, max_tokens=30, temperature=0).choices[0]
    cut = c.chat.completions.create(model="x", messages=ask, max_tokens=12, temperature=0).choices[0]
    assert cut.finish_reason == "length" and full.message.content.startswith(cut.message.content)
    more = c.chat.completions.create(
        model="x", messages=ask + [{"role": "assistant", "content": cut.message.content}], max_tokens=18,
        temperature=0, extra_body={"continue_final_message": True}).choices[0]
    # Greedy: the continued answer is the answer that was not cut off.
    assert cut.message.content + more.message.content == full.message.content
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="x", messages=ask, max_tokens=2, extra_body={"continue_final_message": True})
    assert "last message must be the assistant's" in e.value.message


def test_n_two_choices(smol):
    r = client(smol).chat.completions.create(
        model="x", messages=user("Say a random word."), max_tokens=6, n=2, temperature=1.0, seed=3
    )
    assert [ch.index for ch in r.choices] == [0, 1]
    assert all(ch.message.content for ch in r.choices)


def test_stop_sequence(smol):
    c = client(smol)
    args = dict(model="x", messages=user("List the numbers from 1 to 10, comma separated."), max_tokens=40, temperature=0)
    full = c.chat.completions.create(**args).choices[0].message.content
    assert "5" in full, full
    cut = c.chat.completions.create(stop=["5"], **args).choices[0]
    assert cut.message.content == full[: full.index("5")]
    assert cut.finish_reason == "stop"


def test_seed_determinism(smol):
    c = client(smol)
    args = dict(model="x", messages=user("Write one sentence about the sea."), max_tokens=20, temperature=1.0)
    a = c.chat.completions.create(seed=1234, **args).choices[0].message.content
    b = c.chat.completions.create(seed=1234, **args).choices[0].message.content
    assert a == b


def test_json_object_parses(smol):
    r = client(smol).chat.completions.create(
        model="x",
        messages=user("Give me a JSON object describing a cat."),
        max_tokens=80,
        temperature=0,
        response_format={"type": "json_object"},
    )
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    else:  # cut by max_tokens: still a valid JSON prefix that opens an object
        assert r.choices[0].message.content.lstrip().startswith("{")


def test_json_schema_output_matches(smol):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0, "maximum": 150}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    r = client(smol).chat.completions.create(
        model="x",
        messages=user("Invent a person."),
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}},
    )
    data = json.loads(r.choices[0].message.content)
    jsonschema.validate(data, schema)


def test_logprobs(smol):
    r = client(smol).chat.completions.create(
        model="x", messages=user("Hi"), max_tokens=4, temperature=0, logprobs=True, top_logprobs=2
    )
    content = r.choices[0].logprobs.content
    assert len(content) >= 1
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].token == entry.token  # greedy picks the top token


def test_tool_call_round_trip(mistral):
    c = client(mistral)
    messages = user("What's the weather in Paris?")
    r = c.chat.completions.create(
        model="mistralai/Mistral-7B-Instruct-v0.3",
        messages=messages,
        tools=[WEATHER_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=60,
        temperature=0,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert len(call.id) == 9 and call.id.isalnum()
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, WEATHER_TOOL["function"]["parameters"])
    # Send the result back as a tool message: the template renders it, the model answers.
    messages = messages + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 21})},
    ]
    r2 = c.chat.completions.create(
        model="mistralai/Mistral-7B-Instruct-v0.3", messages=messages, tools=[WEATHER_TOOL], max_tokens=8, temperature=0
    )
    assert r2.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert r2.usage.prompt_tokens > r.usage.prompt_tokens


def test_named_tool_choice_streamed(mistral):
    chunks = list(
        client(mistral).chat.completions.create(
            model="mistralai/Mistral-7B-Instruct-v0.3",
            messages=user("Weather in Oslo?"),
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=60,
            temperature=0,
            stream=True,
        )
    )
    calls = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
    assert calls and calls[0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_strict_model_ids(mistral):
    with pytest.raises(openai.NotFoundError) as e:
        client(mistral).chat.completions.create(model="gpt-4o", messages=user("hi"), max_tokens=2)
    assert e.value.code == "model_not_found"


def test_legacy_completions_plain_and_streamed(smol):
    c = client(smol)
    r = c.completions.create(model="x", prompt="The capital of France is", max_tokens=5, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text and r.usage.completion_tokens == 5
    streamed = "".join(
        ch.choices[0].text for ch in c.completions.create(model="x", prompt="The capital of France is", max_tokens=5, temperature=0, stream=True) if ch.choices
    )
    assert streamed == r.choices[0].text


LLAMA_CPP_TIMINGS = {"prompt_n", "prompt_ms", "prompt_per_token_ms", "prompt_per_second", "predicted_n",
                     "predicted_ms", "predicted_per_token_ms", "predicted_per_second", "cache_n"}


def check_timings(t, prompt_tokens, completion_tokens):
    """llama.cpp's server's `timings` names, plus ours, consistent with the usage."""
    assert LLAMA_CPP_TIMINGS | {"queue_ms", "started_at", "finished_at"} == set(t), t
    assert t["prompt_n"] + t["cache_n"] == prompt_tokens, t
    assert t["predicted_n"] == completion_tokens, t
    assert t["prompt_ms"] > 0 and t["predicted_ms"] >= 0 and t["queue_ms"] >= 0, t
    assert t["predicted_per_second"] == pytest.approx(t["predicted_n"] * 1e3 / t["predicted_ms"]) if t["predicted_ms"] else True
    assert t["prompt_per_token_ms"] == pytest.approx(t["prompt_ms"] / t["prompt_n"]) if t["prompt_n"] else True
    assert t["finished_at"] >= t["started_at"] > 0, t


@pytest.mark.parametrize("path,extra", [("/v1/chat/completions", {"messages": user("Count to ten.")}),
                                        ("/v1/completions", {"prompt": "One, two, three,"})])
def test_timings_are_llama_cpp_servers_plain_and_in_each_choices_last_chunk(smol, path, extra):
    body = {"model": "x", "max_tokens": 6, "temperature": 0, "logit_bias": {"0": -100, "2": -100}, **extra}
    h = {"Authorization": f"Bearer {KEY}"}
    plain = httpx.post(smol.base + path, json={**body, "n": 2}, headers=h, timeout=60).json()
    usage = plain["usage"]
    # Two choices: the prompt as the first read it, the answer tokens of both.
    check_timings(plain["timings"], usage["prompt_tokens"], usage["completion_tokens"])
    assert plain["timings"]["predicted_n"] == 12
    with httpx.stream("POST", smol.base + path, json={**body, "stream": True}, headers=h, timeout=60) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    last = [e for e in events if e.get("choices") and e["choices"][0].get("finish_reason")]
    assert len(last) == 1 and all("timings" not in e for e in events if e is not last[0])
    check_timings(last[0]["timings"], usage["prompt_tokens"], 6)


def test_authentication_errors(smol):
    with pytest.raises(openai.AuthenticationError):
        client(smol, key="wrong").models.list()
    with pytest.raises(openai.AuthenticationError) as e:
        client(smol, key=KEY[:-1] + "x").chat.completions.create(model="x", messages=user("hi"))
    assert e.value.status_code == 401
    missing = httpx.post(smol.base + "/v1/chat/completions", json={"model": "x", "messages": user("hi")})
    assert missing.status_code == 401 and "didn't provide an API key" in missing.json()["error"]["message"]


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(temperature=5), "temperature"),
        (dict(n=0), "n must be"),
        (dict(top_logprobs=3), "logprobs"),
        (dict(max_tokens=0), "max_tokens"),
        (dict(messages=[{"role": "wizard", "content": "x"}]), "role"),
        (dict(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]), "not supported"),
        (dict(messages=[]), "at least one"),
        (dict(stop=["a", "b" * 1001]), "1001 characters long; at most 1000"),
        (dict(stop=["a", "b", "c", "d", "e"]), "at most 4 stop"),
    ],
)
def test_bad_requests(smol, kwargs, fragment):
    args = dict(model="x", messages=user("hi"), max_tokens=2)
    args.update(kwargs)
    with pytest.raises(openai.BadRequestError) as e:
        client(smol).chat.completions.create(**args)
    assert fragment in e.value.message


def test_context_overflow_names_the_numbers(smol):
    with pytest.raises(openai.BadRequestError) as e:
        client(smol).chat.completions.create(model="x", messages=user("hello " * 1500), max_tokens=1000)
    assert e.value.code == "context_length_exceeded"
    assert "2048" in e.value.message and "1000" in e.value.message


def test_template_error_is_a_bad_request(mistral):
    with pytest.raises(openai.BadRequestError) as e:
        client(mistral).chat.completions.create(
            model="mistralai/Mistral-7B-Instruct-v0.3", messages=user("a") + user("b"), max_tokens=2
        )
    assert "alternate user/assistant" in e.value.message


def test_raw_http_errors(smol):
    h = {"Authorization": f"Bearer {KEY}"}
    r = httpx.post(smol.base + "/v1/chat/completions", headers={**h, "content-type": "application/json"}, content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(smol.base + "/v1/chat/completions", headers=h, json={"model": "x", "messages": "nope"})
    assert r.status_code == 400
    big = {"model": "x", "messages": [{"role": "user", "content": "x" * (5 << 20)}]}
    r = httpx.post(smol.base + "/v1/chat/completions", headers=h, json=big)
    assert r.status_code == 413 and "error" in r.json()
    r = httpx.get(smol.base + "/v1/nothing-here", headers=h)
    assert r.status_code == 404 and r.json()["error"]["message"].startswith("Unknown request URL")
    r = httpx.get(smol.base + "/health")
    assert r.status_code == 200
    r = httpx.post(smol.base + "/v1/chat/completions", headers=h, json={"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
    assert r.headers["x-request-id"].startswith("req_") and "x-queue-position" in r.headers


def test_metrics(smol):
    client(smol).chat.completions.create(model="x", messages=user("hi"), max_tokens=2)
    r = httpx.get(smol.base + "/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200
    text = r.text
    assert 'sandbox_http_requests_total{route="/v1/chat/completions",status="200"}' in text
    for name in ("sandbox_queue_length", "sandbox_queue_wait_seconds_bucket", "sandbox_generation_seconds_count",
                 "sandbox_prompt_tokens_total", "sandbox_completion_tokens_total", "sandbox_last_job_tokens_per_second"):
        assert name in text, name
    assert httpx.get(smol.base + "/metrics").status_code == 401


def test_not_ready_is_503_with_reason(tmp_path):
    server = Server(tmp_path / "missing.gguf", wait_ready=False)
    try:
        ready = httpx.get(server.base + "/ready")
        while ready.json()["status"] == "loading":
            ready = httpx.get(server.base + "/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "error"
        assert "missing.gguf" in ready.json()["message"] and "Retry-After" in ready.headers
        with pytest.raises(openai.InternalServerError) as e:
            client(server).chat.completions.create(model="x", messages=user("hi"))
        assert e.value.status_code == 503 and "missing.gguf" in e.value.message
    finally:
        assert server.stop() == 0


def test_ready_details_need_the_key(smol):
    """The status panel's numbers: only for a caller with the key, never for a load
    balancer's plain poll."""
    plain = httpx.get(smol.base + "/ready").json()
    assert plain["status"] == "ready" and "details" not in plain
    assert "details" not in httpx.get(smol.base + "/ready", headers={"Authorization": "Bearer wrong"}).json()
    client(smol).chat.completions.create(model="x", messages=user("Hi"), max_tokens=3, temperature=0)
    d = httpx.get(smol.base + "/ready", headers={"Authorization": f"Bearer {KEY}"}).json()["details"]
    assert d["file"] == "smollm2-135m-instruct.gguf"
    assert d["quantization"] == "Q4_1"
    assert d["context_tokens"] == 2048
    assert d["tool_format"] == "generic"
    assert d["gpus"] == []  # a CPU build
    assert 100e6 < d["parameters"] < 200e6 and d["size_bytes"] > 0
    last = d["recent_answers"][-1]
    assert last["completion_tokens"] == 3 and last["tokens_per_second"] > 0
    assert last["time_to_first_token_ms"] > 0 and last["queue_ms"] >= 0
    assert len(d["recent_answers"]) <= 10
