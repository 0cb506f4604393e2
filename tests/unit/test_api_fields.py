"""Every field of OpenAI's chat-completions request, used by the API or not, on the fake model.

OpenAI's reference (the ``openai`` package's ``CompletionCreateParams``, pinned with the dev
dependencies) gives each field a type: a wrong one is a 400 naming the field, with the
error object the used fields always had, whether the assistant uses the field, refuses
what it asks for, or ignores it. Fields OpenAI does not define stay accepted.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionContentPartRefusalParam,
    ChatCompletionContentPartTextParam,
    ChatCompletionDeveloperMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
    completion_create_params,
)

from apps.api.app import create_app
from apps.api.schemas import ChatMessage, ChatRequest, ContentPart, RefusalPart
from graph.settings import Settings
from tests.unit.test_api import REPLY, URL, api_settings, expect_error, make_service, user
from tools.models import FakeChatModel


@pytest.fixture
def client(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel
) -> Iterator[TestClient]:
    service = make_service(api_settings(make_settings), fake_model)
    with TestClient(create_app(service=service)) as test_client:
        yield test_client


WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TOOL = {"type": "function", "function": WEATHER}
CUSTOM = {"type": "custom", "custom": {"name": "sql", "format": {"type": "text"}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


def earlier(**assistant: Any) -> dict[str, Any]:
    """A body whose history has an assistant message with these fields."""
    return {
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": "Rain.", **assistant},
            {"role": "user", "content": "And tomorrow?"},
        ]
    }


def part(**fields: Any) -> dict[str, Any]:
    """A body whose message is one text part with these fields."""
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi", **fields}]}]}


# (body, the param the 400 names): at least one wrong type per field OpenAI defines, and
# its bounds where the reference gives some.
WRONG = [
    # Used by the assistant.
    (user("hi", model=5), "model"),
    (user("hi", stream="yes"), "stream"),
    (user("hi", stream_options="usage"), "stream_options"),
    (user("hi", stream_options={"include_usage": 1}), "stream_options.include_usage"),
    (
        user("hi", stream_options={"include_obfuscation": "no"}),
        "stream_options.include_obfuscation",
    ),
    (user("hi", temperature="hot"), "temperature"),
    (user("hi", top_p=[]), "top_p"),
    (user("hi", max_tokens=1.5), "max_tokens"),
    (user("hi", max_completion_tokens="9"), "max_completion_tokens"),
    (user("hi", n="x"), "n"),
    (user("hi", n=1.0), "n"),
    (user("hi", user=[]), "user"),
    (user("hi", metadata=[]), "metadata"),
    (user("hi", metadata={"a": 1}), "metadata.a"),
    (user("hi", metadata={f"k{i}": "v" for i in range(17)}), "metadata"),
    (user("hi", metadata={"k" * 65: "v"}), "metadata." + "k" * 65),
    (user("hi", metadata={"a": "v" * 513}), "metadata.a"),
    (user("hi", safety_level=3), "safety_level"),
    ({"messages": [{"role": "user", "content": "hi", "name": 5}]}, "messages.0.name"),
    (earlier(refusal=5), "messages.1.refusal"),
    (earlier(tool_calls="call"), "messages.1.tool_calls"),
    (
        earlier(tool_calls=[{**CALL, "function": {"name": "f", "arguments": {}}}]),
        "messages.1.tool_calls.0.function.arguments",
    ),
    (earlier(tool_calls=[{"id": "c", "type": "robot"}]), "messages.1.tool_calls.0"),
    (earlier(function_call={"name": "f"}), "messages.1.function_call.arguments"),
    (earlier(audio="abc"), "messages.1.audio"),
    (
        part(prompt_cache_breakpoint={"mode": "implicit"}),
        "messages.0.content.0.prompt_cache_breakpoint.mode",
    ),
    # Refused unless they ask for nothing: the type is checked first.
    (user("hi", stop=7), "stop"),
    (user("hi", stop=[1]), "stop.0"),
    (user("hi", stop=["a", "b", "c", "d", "e"]), "stop"),
    (user("hi", logprobs=1), "logprobs"),
    (user("hi", logprobs="true"), "logprobs"),
    (user("hi", top_logprobs=1.5), "top_logprobs"),
    (user("hi", top_logprobs=21), "top_logprobs"),
    (user("hi", response_format="json"), "response_format"),
    (user("hi", response_format={"type": "xml"}), "response_format"),
    (user("hi", response_format={"type": "json_schema"}), "response_format.json_schema"),
    (
        user("hi", response_format={"type": "json_schema", "json_schema": {"name": "a b"}}),
        "response_format.json_schema.name",
    ),
    (
        user(
            "hi", response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": 5}}
        ),
        "response_format.json_schema.schema",
    ),
    (user("hi", tool_choice="sometimes"), "tool_choice"),
    (
        user("hi", tool_choice={"type": "function", "function": {"name": 5}}),
        "tool_choice.function.name",
    ),
    (
        user(
            "hi",
            tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": "maybe", "tools": []}},
        ),
        "tool_choice.allowed_tools.mode",
    ),
    (user("hi", function_call="maybe"), "function_call"),
    (user("hi", function_call={"name": 3}), "function_call.name"),
    (user("hi", modalities="text"), "modalities"),
    (user("hi", modalities=["video"]), "modalities.0"),
    (user("hi", audio={"voice": "alloy"}), "audio.format"),
    (user("hi", audio={"format": "wav", "voice": 3}), "audio.voice"),
    (user("hi", logit_bias=[1]), "logit_bias"),
    (user("hi", logit_bias={"50256": 1.5}), "logit_bias.50256"),
    (user("hi", logit_bias={"50256": 101}), "logit_bias.50256"),
    (user("hi", web_search_options="on"), "web_search_options"),
    (
        user("hi", web_search_options={"search_context_size": "huge"}),
        "web_search_options.search_context_size",
    ),
    (
        user("hi", web_search_options={"user_location": {"type": "exact", "approximate": {}}}),
        "web_search_options.user_location.type",
    ),
    # Checked, then ignored.
    (user("hi", tools=5), "tools"),
    (user("hi", tools=[5]), "tools.0"),
    (user("hi", tools=[{"type": "weird"}]), "tools.0"),
    (user("hi", tools=[{"type": "function"}]), "tools.0.function"),
    (
        user("hi", tools=[{"type": "function", "function": {"name": "bad name"}}]),
        "tools.0.function.name",
    ),
    (
        user("hi", tools=[{"type": "function", "function": {**WEATHER, "parameters": "x"}}]),
        "tools.0.function.parameters",
    ),
    (user("hi", tools=[{"type": "custom", "custom": {"name": 7}}]), "tools.0.custom.name"),
    (
        user(
            "hi",
            tools=[
                {
                    "type": "custom",
                    "custom": {
                        "name": "sql",
                        "format": {
                            "type": "grammar",
                            "grammar": {"definition": "x", "syntax": "ebnf"},
                        },
                    },
                }
            ],
        ),
        "tools.0.custom.format.grammar.syntax",
    ),
    (user("hi", tools=[TOOL] * 129), "tools"),
    (user("hi", functions={}), "functions"),
    (user("hi", functions=[{"name": 5}]), "functions.0.name"),
    (user("hi", parallel_tool_calls="yes"), "parallel_tool_calls"),
    (user("hi", frequency_penalty="x"), "frequency_penalty"),
    (user("hi", frequency_penalty=2.5), "frequency_penalty"),
    (user("hi", presence_penalty=-3), "presence_penalty"),
    (user("hi", seed=1.5), "seed"),
    (user("hi", seed="7"), "seed"),
    (user("hi", store="no"), "store"),
    (user("hi", service_tier="cheap"), "service_tier"),
    (user("hi", prediction={"type": "content"}), "prediction.content"),
    (user("hi", prediction={"type": "diff", "content": "x"}), "prediction.type"),
    (user("hi", prediction={"type": "content", "content": 5}), "prediction.content"),
    (user("hi", prompt_cache_key=5), "prompt_cache_key"),
    (user("hi", prompt_cache_options={"ttl": "1h"}), "prompt_cache_options.ttl"),
    (user("hi", prompt_cache_retention="forever"), "prompt_cache_retention"),
    (user("hi", reasoning_effort="extreme"), "reasoning_effort"),
    (user("hi", verbosity=2), "verbosity"),
    (user("hi", safety_identifier="x" * 129), "safety_identifier"),
    (user("hi", safety_identifier=5), "safety_identifier"),
    (user("hi", moderation={}), "moderation.model"),
    (
        user("hi", moderation={"model": "m", "policy": {"input": {"mode": "warn"}}}),
        "moderation.policy.input.mode",
    ),
]


@pytest.mark.parametrize(("body", "param"), WRONG)
def test_a_wrong_type_in_any_field_is_400_naming_it_and_runs_nothing(
    client: TestClient, fake_model: FakeChatModel, body: dict[str, Any], param: str
) -> None:
    error = expect_error(client.post(URL, json=body), 400, param)
    assert error["type"] == "invalid_request_error"
    assert error["code"] is None  # a bad value, not a feature the assistant lacks
    assert error["message"].startswith(f"{param}: ")
    # What pydantic tried is named nowhere: union members, tags, validators.
    for tried in ("literal[", "tagged-union", "list[", ".str", "Named", "function-"):
        assert tried not in error["message"] and tried not in param
    assert fake_model.calls == []


def test_a_value_of_no_allowed_type_is_told_every_type_it_may_have(client: TestClient) -> None:
    message = expect_error(client.post(URL, json=user("hi", stop=7)), 400, "stop")["message"]
    assert message == "stop: Input should be a valid string, or input should be a valid array"
    message = expect_error(client.post(URL, json=user("hi", tool_choice=1)), 400)["message"]
    assert "'none', 'auto' or 'required'" in message and "object" in message
    # Of one member's type but out of its bounds: that member's message alone.
    five = user("hi", stop=["a", "b", "c", "d", "e"])
    message = expect_error(client.post(URL, json=five), 400, "stop")["message"]
    assert message == "stop: List should have at most 4 items after validation, not 5"


# Well-typed values of the fields the assistant ignores: the turn runs as without them.
IGNORED = [
    {"tools": [TOOL, CUSTOM], "parallel_tool_calls": False},
    {"tools": []},
    {
        "tools": [
            {
                "type": "custom",
                "custom": {
                    "name": "sql",
                    "description": "a query",
                    "format": {"type": "grammar", "grammar": {"definition": "s", "syntax": "lark"}},
                },
            }
        ]
    },
    {"functions": [WEATHER, {"name": "ping"}]},
    {"frequency_penalty": -2, "presence_penalty": 2.0, "seed": -7},
    {"store": True, "service_tier": "flex", "metadata": {f"k{i}": "v" * 512 for i in range(16)}},
    {"prediction": {"type": "content", "content": [{"type": "text", "text": "Hello"}]}},
    {"prompt_cache_key": "k", "prompt_cache_options": {"mode": "explicit", "ttl": "30m"}},
    {"prompt_cache_retention": "24h", "reasoning_effort": "high", "verbosity": "low"},
    {"safety_identifier": "x" * 128, "moderation": {"model": "omni-moderation-latest"}},
    {"moderation": {"model": "m", "policy": {"input": {"mode": "block"}, "output": None}}},
    {"stream_options": {"include_obfuscation": False}, "stream": True},
    {"web_search_options": None, "logit_bias": {}, "audio": None},
    {"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [TOOL]}}},
    # Fields OpenAI does not define: a vendor's extras.
    {"top_k": 40, "repetition_penalty": 1.1, "chat_template_kwargs": {"x": 1}},
]


@pytest.mark.parametrize("extra", IGNORED)
def test_a_well_typed_field_the_assistant_ignores_passes(
    client: TestClient, fake_model: FakeChatModel, extra: dict[str, Any]
) -> None:
    done = client.post(URL, json=user("hi", **extra))
    assert done.status_code == 200, done.text
    if extra.get("stream"):
        assert REPLY.split()[0] in done.text
    else:
        assert done.json()["choices"][0]["message"]["content"] == REPLY
    assert fake_model.calls[-1][-1].text == "hi"


def test_a_refusal_part_of_an_earlier_assistant_message_is_its_words(
    client: TestClient, fake_model: FakeChatModel
) -> None:
    body = earlier(content=[{"type": "refusal", "refusal": "I can't help with that."}])
    done = client.post(URL, json=body)
    assert done.status_code == 200, done.text
    assert "I can't help with that." in [m.text for m in fake_model.calls[-1]]
    mixed = earlier(
        content=[{"type": "text", "text": "Partly:"}, {"type": "refusal", "refusal": "no more."}]
    )
    assert client.post(URL, json=mixed).status_code == 200
    assert "Partly:\nno more." in [m.text for m in fake_model.calls[-1]]


@pytest.mark.parametrize("role", ["user", "system", "developer"])
def test_a_refusal_part_is_the_assistants_only(client: TestClient, role: str) -> None:
    body = {"messages": [{"role": role, "content": [{"type": "refusal", "refusal": "no"}]}]}
    if role != "user":
        body["messages"].append({"role": "user", "content": "hi"})
    error = expect_error(client.post(URL, json=body), 400, "messages.0.content")
    assert "'refusal'" in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        earlier(name="bot", refusal=None, tool_calls=[CALL], audio={"id": "audio_1"}),
        earlier(function_call={"name": "get_weather", "arguments": "{}"}),
        earlier(
            tool_calls=[{"id": "c", "type": "custom", "custom": {"name": "sql", "input": "x"}}]
        ),
        part(prompt_cache_breakpoint={"mode": "explicit", "ttl": "12h"}),
        {
            "messages": [
                {"role": "developer", "content": "be brief", "name": "ops"},
                {"role": "user", "content": "hi", "name": "ada_l", "vendor_extra": 1},
            ]
        },
    ],
)
def test_well_typed_message_fields_the_assistant_ignores_pass(
    client: TestClient, body: dict[str, Any]
) -> None:
    done = client.post(URL, json=body)
    assert done.status_code == 200, done.text


# --- every field of the reference is covered --------------------------------------------------


def _fields(*typed_dicts: Any) -> set[str]:
    return {name for td in typed_dicts for name in typing.get_type_hints(td)}


def test_every_field_of_openais_request_is_a_field_of_the_schema() -> None:
    reference = _fields(completion_create_params.CompletionCreateParamsBase) | {"stream"}
    assert reference - set(ChatRequest.model_fields) == set()
    messages = _fields(
        ChatCompletionSystemMessageParam,
        ChatCompletionDeveloperMessageParam,
        ChatCompletionUserMessageParam,
        ChatCompletionAssistantMessageParam,
    )
    assert messages - set(ChatMessage.model_fields) == set()
    assert _fields(ChatCompletionContentPartTextParam) - set(ContentPart.model_fields) == set()
    assert _fields(ChatCompletionContentPartRefusalParam) - set(RefusalPart.model_fields) == set()


def test_every_field_of_the_schema_has_a_wrong_type_case() -> None:
    tried = {param.split(".")[0] for _, param in WRONG}
    assert set(ChatRequest.model_fields) - tried - {"messages"} == set()
    in_messages = {param.split(".")[2] for _, param in WRONG if param.startswith("messages.")}
    assert (
        set(ChatMessage.model_fields) - in_messages - {"role", "content", "tool_call_id"} == set()
    )


def test_null_is_the_default_for_every_optional_field_of_the_request_and_its_messages(
    client: TestClient,
) -> None:
    optional = [name for name, field in ChatRequest.model_fields.items() if not field.is_required()]
    in_message = [
        name for name, field in ChatMessage.model_fields.items() if not field.is_required()
    ]
    body = {
        **{name: None for name in optional},
        "messages": [{"role": "user", **{name: None for name in in_message}, "content": "hi"}],
    }
    done = client.post(URL, json=body)
    assert done.status_code == 200, done.text
    assert done.json()["choices"][0]["message"]["content"] == REPLY
