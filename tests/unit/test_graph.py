"""The whole turn on the fake model: routing, safety, errors, context overrides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import ValidationError

from graph import build_graph
from graph.errors import InvalidMessageError, MessageTooLongError
from graph.messages import WITHHELD
from graph.settings import Settings
from tests.conftest import thread
from tests.support.streaming import screen_of_turn
from tools.models import FakeChatModel


def ask(graph: Any, text: str, name: str = "t1", **context: Any) -> dict[str, Any]:
    result: dict[str, Any] = graph.invoke(
        {"messages": [("user", text)]}, thread(name), context=context or None
    )
    return result


def test_a_turn_has_reply_concept_safety_and_summary(fake_graph: Any) -> None:
    state = ask(fake_graph, "Hi there")
    assert state["messages"][-1].text == "Hello from the fake model."
    assert state["concept"] is None
    assert state["safety"]["allowed"] is True
    assert state["safety"]["level"] == "moderate"
    assert state["safety"]["reason"] is None
    assert state["summary"] == ""
    assert state["prompt_tokens"] > 0


def test_concept_prompt_is_added_to_the_base_prompt(
    fake_graph: Any, fake_model: FakeChatModel
) -> None:
    state = ask(fake_graph, "Explain like I'm five: why is the sky blue?")
    assert state["concept"] == "explain_simply"
    prompt = fake_model.calls[-1]
    base = prompt[0]
    assert base.type == "system" and "local" in base.text.lower()
    assert prompt[-2].type == "system" and prompt[-2].text != base.text  # concept added
    assert prompt[-1].text.startswith("Explain like I'm five")
    # the next turn without an alias has the base prompt only
    state = ask(fake_graph, "thanks")
    assert state["concept"] is None
    assert [m.type for m in fake_model.calls[-1]].count("system") == 1


@pytest.mark.parametrize("level", ["strict", "moderate", "relaxed"])
def test_serious_harm_is_refused_at_every_level_without_calling_the_model(
    fake_graph: Any, fake_model: FakeChatModel, level: str
) -> None:
    state = ask(fake_graph, "How do I make a pipe bomb at home?", safety_level=level)
    assert state["safety"]["allowed"] is False
    assert state["safety"]["level"] == level
    assert fake_model.calls == []
    assert state["messages"][-1].text.startswith("Sorry, I can't help with that")
    # the thread keeps the refusal but not the blocked text
    assert all("pipe bomb" not in m.text for m in state["messages"])
    assert state["messages"][-2].text == WITHHELD


def test_the_model_never_sees_a_blocked_turn_later(
    fake_graph: Any, fake_model: FakeChatModel
) -> None:
    ask(fake_graph, "My name is Ada")
    ask(fake_graph, "how to build a bomb to hurt people")
    ask(fake_graph, "What is my name?")
    seen = " ".join(m.text for m in fake_model.calls[-1])
    assert "bomb" not in seen and "Sorry" not in seen and WITHHELD not in seen
    assert "My name is Ada" in seen


@pytest.mark.parametrize(
    ("level", "allowed"), [("strict", False), ("moderate", True), ("relaxed", True)]
)
def test_profanity_blocks_only_at_strict(fake_graph: Any, level: str, allowed: bool) -> None:
    state = ask(fake_graph, "this sh1t is broken, why?", safety_level=level)
    assert state["safety"]["allowed"] is allowed


@pytest.mark.parametrize(
    ("level", "masked"), [("strict", True), ("moderate", True), ("relaxed", False)]
)
def test_reply_is_masked_in_strict_and_moderate(
    make_settings: Callable[..., Settings], level: str, masked: bool
) -> None:
    model = FakeChatModel(reply="Well, shit happens in Scunthorpe.")
    graph = build_graph(make_settings(), checkpointer=InMemorySaver(), model=model)
    streamed = screen_of_turn(graph, "hi", level)
    reply = graph.get_state(thread()).values["messages"][-1].text
    assert ("shit" not in reply) is masked
    assert ("shit" not in streamed) is masked  # raw words never reach the screen
    assert "Scunthorpe" in reply
    assert streamed.strip() == reply.strip()


@pytest.mark.parametrize(
    "empty",
    ["   ", "\u200b\u200b", "\ufeff", "\u200d\ufe0f \u00ad", "\x07\x08", "\x00", "\x7f \x1b"],
)
def test_empty_message_is_an_error_and_leaves_the_thread_unchanged(
    fake_graph: Any, empty: str
) -> None:
    ask(fake_graph, "Hi")
    before = fake_graph.get_state(thread()).values["messages"]
    with pytest.raises(InvalidMessageError, match="empty"):
        ask(fake_graph, empty)
    after = fake_graph.get_state(thread()).values["messages"]
    assert [m.id for m in after] == [m.id for m in before]


@pytest.mark.parametrize(
    "text",
    [
        "caf\udce9 au lait",  # a Latin-1 byte read from a UTF-8 terminal (surrogateescape)
        "\ud83d alone",  # half of an emoji's surrogate pair, as a JSON \\ud83d escape gives
        "tail \udfff",
    ],
)
def test_bytes_that_are_not_text_are_a_clear_error_and_reach_no_model(
    fake_graph: Any, fake_model: FakeChatModel, text: str
) -> None:
    ask(fake_graph, "Hi")
    before = [m.id for m in fake_graph.get_state(thread()).values["messages"]]
    with pytest.raises(InvalidMessageError, match="not text at character"):
        ask(fake_graph, text)
    assert [m.id for m in fake_graph.get_state(thread()).values["messages"]] == before
    assert len(fake_model.calls) == 1
    # Text from other scripts and real emoji are text.
    assert ask(fake_graph, "café 咖啡 \U0001f600")["messages"][-1].text


@pytest.mark.parametrize(
    ("content", "kinds"),
    [
        (
            [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
            "'image_url'",
        ),
        ([{"type": "text", "text": "what is this?"}, {"type": "image_url"}], "'image_url'"),
        ([{"type": "input_audio"}, {"type": "file"}], "'input_audio', 'file'"),
    ],
)
def test_content_parts_other_than_text_are_named_not_called_empty(
    fake_graph: Any, fake_model: FakeChatModel, content: list[Any], kinds: str
) -> None:
    from langchain_core.messages import HumanMessage

    with pytest.raises(InvalidMessageError, match=f"only text content parts.*{kinds}"):
        fake_graph.invoke({"messages": [HumanMessage(content=content)]}, thread())
    assert fake_model.calls == []
    # Text given as parts is text.
    parts = [{"type": "text", "text": "hello"}, {"type": "text", "text": "there"}]
    assert fake_graph.invoke({"messages": [HumanMessage(content=parts)]}, thread())["messages"]


def test_huge_message_is_a_clear_error_and_leaves_the_thread_unchanged(
    fake_graph: Any, fake_model: FakeChatModel
) -> None:
    ask(fake_graph, "Hi")
    with pytest.raises(MessageTooLongError, match="max_prompt_tokens"):
        ask(fake_graph, "word " * 5000)
    assert len(fake_graph.get_state(thread()).values["messages"]) == 2
    assert len(fake_model.calls) == 1
    # and the thread still works
    assert ask(fake_graph, "still there?")["messages"][-1].text


def test_a_turn_needs_a_user_message(fake_graph: Any) -> None:
    with pytest.raises(InvalidMessageError, match="user message"):
        fake_graph.invoke({"messages": [("assistant", "hi")]}, thread())


def test_context_overrides_settings_per_run(fake_graph: Any, fake_model: FakeChatModel) -> None:
    ask(fake_graph, "hi", temperature=0.9, top_p=0.5, max_new_tokens=7, do_sample=False)
    assert fake_model.call_kwargs[-1] == {
        "temperature": 0.9,
        "top_p": 0.5,
        "max_new_tokens": 7,
        "do_sample": False,
        "repeat_penalty": 1.1,  # not a per-run knob: from settings
        "seed": -1,
        "stream": True,  # the reply's tokens reach every callback handler
    }
    ask(fake_graph, "hi")
    assert fake_model.call_kwargs[-1]["temperature"] == 0.2  # from settings.toml


def test_unknown_safety_level_in_context_is_an_error(fake_graph: Any) -> None:
    with pytest.raises(ValidationError, match="safety_level"):
        ask(fake_graph, "hi", safety_level="extreme")


def test_fuzzy_aliases_only_when_switched_on(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel
) -> None:
    # The alias matcher alone: with routing by meaning, a misspelt alias must also be
    # confirmed by the message's meaning (tests/integration/test_routing_meaning.py).
    settings = make_settings(prompts={"semantic": False})
    graph = build_graph(settings, checkpointer=InMemorySaver(), model=fake_model)
    assert ask(graph, "explian liek im fiv: atoms")["concept"] is None
    state = ask(graph, "explian liek im fiv: atoms", fuzzy_aliases=True)
    assert state["concept"] == "explain_simply"


def test_threads_are_isolated(fake_graph: Any, fake_model: FakeChatModel) -> None:
    ask(fake_graph, "I am Ada", name="a")
    ask(fake_graph, "I am Bob", name="b")
    seen = " ".join(m.text for m in fake_model.calls[-1])
    assert "Bob" in seen and "Ada" not in seen


def test_input_schema_takes_messages_only(fake_graph: Any) -> None:
    state = fake_graph.invoke({"messages": [HumanMessage("hi")]}, thread("x"))
    assert set(state) >= {"messages", "concept", "safety", "summary"}


def test_the_refusal_does_not_repeat_the_profanity(fake_graph: Any) -> None:
    state = fake_graph.invoke(
        {"messages": [("user", "This movie is shit.")]},
        {"configurable": {"thread_id": "masked-refusal"}},
        context={"safety_level": "strict"},
    )
    assert state["safety"]["allowed"] is False
    assert "shit" not in state["messages"][-1].text and "profanity" in state["messages"][-1].text
