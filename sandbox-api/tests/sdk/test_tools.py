"""Tool calls through the unmodified openai SDK on models of each format: SmolLM2's own
template has no tools (the generic format), the same model with a Hermes-style template,
and the Mistral-vocabulary model. Forced calls are checked against the tool's schema;
automatic ones may be text or calls, and either must be well formed."""

import json

import jsonschema
import openai
import pytest
from test_openai_sdk import WEATHER_TOOL, client, user

TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The current time in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]}},
            "required": ["city"],
        },
    },
}
TOOLS = [WEATHER_TOOL, TIME_TOOL]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def check_calls(calls, names=None):
    assert calls
    for call in calls:
        assert call.type == "function"
        assert len(call.id) == 9 and call.id.isalnum()
        assert call.function.name in (names or SCHEMAS)
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


@pytest.fixture(params=["smol", "smol_hermes", "mistral"])
def server(request):
    return request.getfixturevalue(request.param)


def test_required_call(server):
    r = client(server).chat.completions.create(
        model="mistralai/Mistral-7B-Instruct-v0.3",
        messages=user("What's the weather in Paris, in celsius?"),
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=120,
        temperature=0,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    check_calls(choice.message.tool_calls)


def test_named_call_streamed(server):
    chunks = list(
        client(server).chat.completions.create(
            model="mistralai/Mistral-7B-Instruct-v0.3",
            messages=user("What time is it in Oslo?"),
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_time"}},
            max_tokens=120,
            temperature=0,
            stream=True,
        )
    )
    deltas = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
    assert deltas and deltas[0].function.name == "get_time" and deltas[0].id
    arguments = "".join(d.function.arguments or "" for d in deltas)
    jsonschema.validate(json.loads(arguments), SCHEMAS["get_time"])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert not "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)


def test_forced_call_cut_off_is_a_partial_call_with_length(server):
    r = client(server).chat.completions.create(
        model="mistralai/Mistral-7B-Instruct-v0.3",
        messages=user("What's the weather in Lima?"),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=16,
        temperature=0,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content is None, "the markup is not shown as text"
    call = choice.message.tool_calls[0]
    assert call.function.name and "get_weather".startswith(call.function.name)


def test_auto_round_trip(server):
    """The model decides; whatever it does is well formed, and a tool result sent back
    in the next request is rendered and answered."""
    c = client(server)
    messages = user("What's the weather in Paris, in celsius?")
    r = c.chat.completions.create(
        model="mistralai/Mistral-7B-Instruct-v0.3", messages=messages, tools=TOOLS, max_tokens=60, temperature=0
    )
    msg = r.choices[0].message
    if r.choices[0].finish_reason == "tool_calls":
        check_calls(msg.tool_calls)
    else:
        assert msg.tool_calls is None and msg.content is not None
    call = {
        "id": "abcdefghi",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "celsius"})},
    }
    messages = messages + [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "abcdefghi", "content": json.dumps({"temperature": 21})},
    ]
    r2 = c.chat.completions.create(
        model="mistralai/Mistral-7B-Instruct-v0.3", messages=messages, tools=TOOLS, max_tokens=16, temperature=0
    )
    assert r2.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert r2.usage.prompt_tokens > r.usage.prompt_tokens


def test_parallel_calls_can_be_several_and_one_when_not_parallel(server):
    c = client(server)
    ask = user("Weather and time in Oslo, please.")
    r = c.chat.completions.create(
        model="mistralai/Mistral-7B-Instruct-v0.3", messages=ask, tools=TOOLS, tool_choice="required", max_tokens=200, temperature=0
    )
    calls = r.choices[0].message.tool_calls
    if r.choices[0].finish_reason == "length":
        # A small model may go on calling until the limit: the last call is then partial.
        calls = calls[:-1]
    else:
        assert r.choices[0].finish_reason == "tool_calls"
    check_calls(calls)
    r = c.chat.completions.create(
        model="mistralai/Mistral-7B-Instruct-v0.3",
        messages=ask,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=200,
        temperature=0,
    )
    assert len(r.choices[0].message.tool_calls) == 1
    assert r.choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_answers_in_text(server):
    r = client(server).chat.completions.create(
        model="mistralai/Mistral-7B-Instruct-v0.3", messages=user("Hi!"), tools=TOOLS, tool_choice="none", max_tokens=8, temperature=0
    )
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason in ("stop", "length")


def test_bad_tool_requests_are_refused_with_the_parameter(smol):
    c = client(smol)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(
            model="x", messages=user("hi"), tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}
        )
    assert e.value.param == "tool_choice" and "nope" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="x", messages=user("hi"), tool_choice="required")
    assert e.value.param == "tool_choice"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(
            model="x",
            messages=user("hi"),
            tools=TOOLS,
            tool_choice="required",
            response_format={"type": "json_object"},
        )
    assert e.value.param == "response_format"
