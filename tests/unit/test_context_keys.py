"""Unknown keys in a run's context are refused on every way in, the LangGraph server too.

The server drops context keys its schema lacks before the graph sees them
(``langgraph_api.stream._filter_context_by_schema``); ``graph/app.py`` is a factory the
server calls with the context as sent, and refuses unknown keys there.
"""

from __future__ import annotations

from typing import Any

import pytest
from langgraph_sdk.runtime import _ExecutionRuntime, _ReadRuntime

import graph.app as app
from graph.context import Context, UnknownContextKeyError, check_context_keys


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"safty_level": "strict"}, "'safty_level' (did you mean 'safety_level'?)"),
        ({"temprature": 0.0, "top_p": 0.5}, "'temprature' (did you mean 'temperature'?)"),
        ({"userid": "ada"}, "'userid' (did you mean 'user_id'?)"),
        ({"x": 1, "collection": "docs"}, "'x'"),
        ({"Safety_Level": "strict"}, "'Safety_Level'"),  # keys are case-sensitive, as in Context
    ],
)
def test_an_unknown_key_is_named_with_what_was_meant(context: dict[str, Any], named: str) -> None:
    with pytest.raises(UnknownContextKeyError) as info:
        check_context_keys(context)
    message = str(info.value)
    assert named in message
    assert "safety_level, temperature" in message  # the keys it takes, listed
    with pytest.raises(ValueError):  # what the CLI and the API say about the same dict
        Context.model_validate(context)


def test_several_unknown_keys_are_all_named() -> None:
    with pytest.raises(UnknownContextKeyError, match=r"keys 'a', 'b'"):
        check_context_keys({"a": 1, "safety_level": "strict", "b": 2})


@pytest.mark.parametrize(
    "context",
    [
        {},
        {"safety_level": "strict", "temperature": 0.0, "user_id": "ada"},
        dict.fromkeys(Context.model_fields),
        # The older config={"configurable": {...}} becomes the context: thread and
        # checkpoint addresses in it are the server's, not typos.
        {"thread_id": "t", "checkpoint_id": "c", "checkpoint_ns": "", "safety_level": "strict"},
    ],
)
def test_known_keys_pass(context: dict[str, Any]) -> None:
    check_context_keys(context)


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> object:
    built = object()
    monkeypatch.setattr(app, "_compiled", lambda: built)
    return built


def test_the_server_calls_the_factory_with_its_runtime(compiled: object) -> None:
    from langgraph_api._factory_utils import _classify_factory

    hook = _classify_factory(app.graph)
    assert hook is not None
    runtime = _ExecutionRuntime(access_context="threads.create_run", store=None, context={})
    assert hook({}, runtime) == {"runtime": runtime}  # the runtime, not the config


def test_a_run_with_an_unknown_key_fails_and_a_good_one_gets_the_graph(compiled: object) -> None:
    def run(context: dict[str, Any]) -> Any:
        runtime = _ExecutionRuntime(
            access_context="threads.create_run", store=None, context=context
        )
        return app.graph(runtime)

    with pytest.raises(UnknownContextKeyError, match="'safty_level'"):
        run({"safety_level": "strict", "safty_level": "relaxed"})
    assert run({"safety_level": "strict"}) is compiled
    assert run({}) is compiled


@pytest.mark.parametrize("access", ["assistants.read", "threads.read", "threads.update"])
def test_reads_of_schemas_and_state_check_nothing(compiled: object, access: str) -> None:
    assert app.graph(_ReadRuntime(access_context=access, store=None)) is compiled  # type: ignore[arg-type]
