"""LangChain's OpenAI chat model, unmodified, pointed at sandbox-api: tools bound and
called, the result sent back, streamed tool calls, and structured output through
function calling, on the generic-format model and the Mistral-vocabulary model."""

from typing import Literal

import pytest
from conftest import KEY
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field


@tool
def get_weather(city: Literal["Paris", "Oslo", "Lima"], unit: Literal["celsius", "fahrenheit"]) -> str:
    """Current weather for a city."""
    return f"21 degrees {unit} and sunny in {city}"


class Forecast(BaseModel):
    """A weather forecast."""

    city: Literal["Paris", "Oslo", "Lima"] = Field(description="the city")
    days: int = Field(ge=1, le=7, description="how many days ahead")


@pytest.fixture(params=["smol", "mistral"])
def llm(request):
    server = request.getfixturevalue(request.param)
    return ChatOpenAI(
        base_url=server.base + "/v1",
        api_key=KEY,
        model="mistralai/Mistral-7B-Instruct-v0.3",
        temperature=0,
        max_tokens=80,
        max_retries=0,
    )


def check_weather_call(call):
    assert call["name"] == "get_weather"
    assert call["args"]["city"] in ("Paris", "Oslo", "Lima")
    assert call["args"]["unit"] in ("celsius", "fahrenheit")
    assert len(call["id"]) == 9


def test_bind_tools_round_trip(llm):
    question = HumanMessage("What's the weather in Paris?")
    forced = llm.bind_tools([get_weather], tool_choice="get_weather")
    ai = forced.invoke([question])
    assert len(ai.tool_calls) == 1 and not ai.invalid_tool_calls
    check_weather_call(ai.tool_calls[0])
    result = get_weather.invoke(ai.tool_calls[0])  # a ToolMessage answering the call's id
    assert result.tool_call_id == ai.tool_calls[0]["id"]
    answer = llm.bind_tools([get_weather]).invoke([question, ai, result])
    assert answer.content or answer.tool_calls
    assert answer.response_metadata["finish_reason"] in ("stop", "length", "tool_calls")


def test_streamed_tool_calls(llm):
    forced = llm.bind_tools([get_weather], tool_choice="get_weather")
    full = None
    chunks = 0
    for chunk in forced.stream("Weather in Oslo, in fahrenheit?"):
        full = chunk if full is None else full + chunk
        chunks += 1
    assert chunks > 1
    assert len(full.tool_calls) == 1
    check_weather_call(full.tool_calls[0])
    assert full.response_metadata["finish_reason"] == "tool_calls"


def test_structured_output_by_function_calling(llm):
    structured = llm.with_structured_output(Forecast, method="function_calling")
    forecast = structured.invoke("Give me the forecast for Lima, three days ahead.")
    assert isinstance(forecast, Forecast)
    assert forecast.city in ("Paris", "Oslo", "Lima") and 1 <= forecast.days <= 7
