"""Schemas that used to crash or stall the API (issue: one 70 KB request killed the process)
are refused with a 400 naming the limit, the process stays up, and legitimate recursive
schemas work."""

import json
import time

import httpx
import jsonschema

from conftest import KEY

HEADERS = {"Authorization": f"Bearer {KEY}"}


def chain(n):
    defs = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(n - 1)}
    defs[f"d{n - 1}"] = {"type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def post(server, body, timeout=60):
    return httpx.post(f"{server.base}/v1/chat/completions", json=body, headers=HEADERS, timeout=timeout)


def ask(schema, **extra):
    return {
        "model": "x",
        "messages": [{"role": "user", "content": "Answer in JSON."}],
        "max_tokens": 40,
        "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        **extra,
    }


def refused(r, *words):
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == "response_format", err
    for w in words:
        assert w in err["message"], err["message"]
    return err["message"]


def still_serving(server, pid, model="x"):
    assert server.proc.poll() is None and server.proc.pid == pid, "the API process died"
    assert httpx.get(f"{server.base}/health", timeout=2).status_code == 200
    r = post(server, {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert r.status_code == 200, r.text


def test_the_crash_cases_are_400s_and_the_process_lives(smol):
    pid = smol.proc.pid
    # The 2,000-link $ref chain that overflowed a worker's stack (70 KB).
    body = ask(chain(2000))
    assert len(json.dumps(body)) > 60_000
    refused(post(smol, body), "2000 $ref references", "at most 256")
    # 10,000 optional properties (and 2,000, which took 17-30 s).
    props = {f"p{i}": {"type": "string"} for i in range(10_000)}
    refused(post(smol, ask({"type": "object", "properties": props})), "10000 optional properties", "at most 64")
    props = {f"p{i}": {"type": "string"} for i in range(2_000)}
    t0 = time.monotonic()
    refused(post(smol, ask({"type": "object", "properties": props})), "2000 optional properties")
    assert time.monotonic() - t0 < 5
    still_serving(smol, pid)


def test_a_tool_with_a_long_ref_chain_is_refused(mistral):
    pid = mistral.proc.pid
    tool = {"type": "function", "function": {"name": "f", "parameters": chain(3000)}}
    r = post(mistral, {
        "model": "mistralai/Mistral-7B-Instruct-v0.3",
        "messages": [{"role": "user", "content": "Call f."}],
        "tools": [tool],
        "tool_choice": "required",
        "max_tokens": 8,
    })
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "tools" and "at most 256" in err["message"], err
    still_serving(mistral, pid, "mistralai/Mistral-7B-Instruct-v0.3")


def test_unenforceable_schemas_are_refused_by_keyword(smol):
    msg = refused(post(smol, ask({"type": "integer", "minimum": 10, "maximum": 1})), "minimum 10 is above maximum 1")
    assert "no value can match" in msg
    refused(post(smol, ask({"type": "string", "pattern": "["})), "pattern", "not a regular expression")
    refused(post(smol, ask({"type": "object", "properties": {"a": {"not": {"type": "null"}}}})), '"not"', "#/properties/a")
    refused(post(smol, ask({"$ref": "https://example.com/schema.json"})), "only references into the same schema")
    refused(post(smol, ask({"$ref": "#/$defs/nowhere"})), "points at nothing")
    deep = {"type": "string"}
    for _ in range(40):
        deep = {"type": "array", "items": deep}
    refused(post(smol, ask(deep)), "more than 32 levels")


def test_an_unanchored_pattern_is_enforced_as_a_search(smol):
    # JSON Schema's pattern matches anywhere; the grammar converter used to accept any
    # string for it (with only a log warning).
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "ZQ[0-9]{3}"}},
              "required": ["code"], "additionalProperties": False}
    for seed in range(3):
        r = post(smol, ask(schema, max_tokens=40, temperature=1.0, seed=seed))
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        content = choice["message"]["content"]
        if choice["finish_reason"] == "stop":
            jsonschema.validate(json.loads(content), schema)
        else:
            # Cut off while searching for ZQ: still inside the one string, which no
            # bare quote has left (the converter's own "." allowed one).
            value = content.split('"code"', 1)[1].split('"', 1)[1]
            assert '"' not in value and "\\" not in value, content
    # Syntax the grammar cannot enforce is refused, not ignored.
    for pattern in ("^(?=a)[a-z]+$", "^(a)\\1$", "^a$b$"):
        msg = refused(post(smol, ask({"type": "string", "pattern": pattern})), "the pattern at #", "cannot be enforced")
        assert "lookaround" in msg, msg
    # The converter drops length limits and formats next to a pattern.
    msg = refused(post(smol, ask({"type": "string", "pattern": "^[a-z]+$", "maxLength": 5})), "maxLength")
    assert "{m,n}" in msg


def test_a_recursive_schema_works(smol):
    tree = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 8}, "children": {"type": "array", "items": {"$ref": "#"}, "maxItems": 2}},
        "required": ["name", "children"],
        "additionalProperties": False,
    }
    r = post(smol, ask(tree, max_tokens=120))
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    if choice["finish_reason"] == "stop":
        jsonschema.validate(json.loads(choice["message"]["content"]), tree)
    else:
        assert choice["message"]["content"].lstrip().startswith("{")


def test_the_largest_accepted_schemas_are_prepared_quickly(smol):
    """Within the limits nothing is slow: 64 optional properties, a 255-link chain."""
    props = {f"p{i}": {"type": "integer"} for i in range(64)}
    for schema in ({"type": "object", "properties": props}, chain(255)):
        t0 = time.monotonic()
        r = post(smol, ask(schema, max_tokens=1))
        assert r.status_code == 200, r.text
        assert time.monotonic() - t0 < 10


def test_too_many_messages_are_refused_quickly_and_health_stays_prompt(smol):
    import threading

    body = {"model": "x", "messages": [{"role": "user", "content": "x"}] * 100_000, "max_tokens": 1}
    slowest = []

    def probe():
        for _ in range(20):
            t0 = time.monotonic()
            httpx.get(f"{smol.base}/health", timeout=5)
            slowest.append(time.monotonic() - t0)
            time.sleep(0.02)

    t = threading.Thread(target=probe)
    t.start()
    r = post(smol, body)
    t.join()
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "messages" and "at most 2048" in r.json()["error"]["message"]
    assert max(slowest) < 1.0, slowest
