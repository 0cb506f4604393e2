"""The LoRA adapter serves the reply only: a per-call switch on one llama.cpp context.

A stand-in for ``llama_cpp.Llama`` records which adapter was set on the context for each
call; llama.cpp's adapter and memory functions are replaced by recorders, so no weights
load. What must hold: the base model (judge, summary, rewrite) never runs with the
adapter, the reply always does, a switch empties the context, and saved prompt states
are keyed by the adapter.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from graph.deps import Deps
from graph.settings import Settings
from tests.conftest import thread
from tools.models import FakeChatModel, LlamaCppChatModel, MaskingChatModel, with_adapter
from tools.models.state_cache import PrefixStateCache

ADDRESS = 0x5A5A
ADAPTER = ctypes.cast(ADDRESS, llama_cpp.llama_adapter_lora_p_ctypes)  # as llama.cpp returns
PROMPT = [SystemMessage("Be brief."), HumanMessage("Say hello.")]


class SwitchingLlama:
    """Streams a fixed reply and records the adapter active at each call."""

    def __init__(self) -> None:
        self.ctx = object()
        self.adapter: int | None = None
        self.calls: list[tuple[int | None, list[dict[str, str]]]] = []
        self.switches: list[int | None] = []
        self.cleared: list[int] = []
        self.n_tokens = 0

    def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append((self.adapter, kwargs["messages"]))
        self.n_tokens = 40  # the prompt now fills the context
        yield {"choices": [{"delta": {"content": "Hello!"}, "finish_reason": None}]}
        yield {"choices": [{"delta": {}, "finish_reason": "stop"}]}

    def tokenize(self, data: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(data)


@pytest.fixture
def llama(monkeypatch: pytest.MonkeyPatch) -> SwitchingLlama:
    fake = SwitchingLlama()

    def set_adapters(ctx: object, adapters: Any, n: int, scales: Any) -> int:
        assert ctx is fake.ctx
        fake.adapter = ctypes.cast(adapters[0], ctypes.c_void_p).value if n else None
        fake.switches.append(fake.adapter)
        return 0

    def seq_rm(memory: object, seq: int, start: int, end: int) -> bool:
        fake.cleared.append(start)
        return True

    monkeypatch.setattr(llama_cpp, "llama_set_adapters_lora", set_adapters)
    monkeypatch.setattr(llama_cpp, "llama_get_memory", lambda ctx: ctx)
    monkeypatch.setattr(llama_cpp, "llama_memory_seq_rm", seq_rm)
    return fake


def loaded(llama: SwitchingLlama, lora: str | None = "/runs/a/adapter.gguf") -> LlamaCppChatModel:
    """A model as if its weights and adapter had loaded (no state cache)."""
    model = LlamaCppChatModel(model_path="/nowhere/m.gguf", lora_path=lora, state_cache_mb=0)
    model._shared.llama = llama
    model._shared.adapter = ADAPTER if lora else None
    return model


def test_the_base_model_runs_without_the_adapter_and_its_view_with_it(
    llama: SwitchingLlama,
) -> None:
    base = loaded(llama)
    reply = base.with_adapter()
    # Any order of calls: each runs with its own choice, whatever ran before.
    for model in (base, reply, reply, base, reply, base, base):
        model.invoke(PROMPT)
    assert [a for a, _ in llama.calls] == [None, ADDRESS, ADDRESS, None, ADDRESS, None, None]
    # Switched only when the choice changed: on, off, on, off.
    assert llama.switches == [ADDRESS, None, ADDRESS, None]


def test_a_switch_empties_the_context(llama: SwitchingLlama) -> None:
    base = loaded(llama)
    base.invoke(PROMPT)
    assert llama.n_tokens == 40 and llama.cleared == []
    base.with_adapter()._activate()
    # Every cell went (from position 0) and llama-cpp-python will evaluate from scratch.
    assert (llama.n_tokens, llama.cleared) == (0, [0])


def test_the_view_shares_the_weights_and_the_context_and_is_itself_once_on(
    llama: SwitchingLlama,
) -> None:
    base = loaded(llama)
    view = base.with_adapter()
    assert view is not base and view.use_adapter and not base.use_adapter
    assert view._shared is base._shared and view.llama is llama
    assert view.with_adapter() is view
    assert (base.adapter_key, view.adapter_key) == ("", "/runs/a/adapter.gguf")


@pytest.mark.parametrize(
    "model",
    [
        LlamaCppChatModel(model_path="/nowhere/m.gguf"),  # llama.cpp without an adapter
        FakeChatModel(reply="hi"),
        GenericFakeChatModel(messages=iter([AIMessage("hi")])),
    ],
)
def test_a_model_without_an_adapter_is_its_own_reply_model(model: Any) -> None:
    assert with_adapter(model) is model


def test_the_cache_finds_a_state_only_under_the_key_it_was_saved_with() -> None:
    cache = PrefixStateCache(1 << 20)
    prompt = list(range(64))
    assert cache.store(prompt, bytearray(b"base"), "")
    assert cache.longest_prefix([*prompt, 99], "/a.gguf") is None
    assert not cache.covers(prompt, "/a.gguf")
    # The same tokens under the adapter are a separate entry, not "already covered".
    assert cache.store(prompt, bytearray(b"tuned"), "/a.gguf")
    assert len(cache) == 2
    for key, data in (("", b"base"), ("/a.gguf", b"tuned"), ("", b"base")):
        match = cache.longest_prefix([*prompt, 99], key)
        assert match is not None and bytes(match.state.data) == data and match.prefix == 64
    # A longer state supersedes only the shorter one of its own key.
    assert cache.store([*prompt, 1, 2], bytearray(b"base+"), "")
    assert sorted(bytes(s.data) for s in cache.entries()) == [b"base+", b"tuned"]
    assert cache.longest_prefix(prompt, "/b.gguf") is None


def test_states_saved_around_a_switch_carry_the_weights_that_computed_them(
    llama: SwitchingLlama, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A switch saves the live cells under the adapter that computed them, not the next."""
    base = loaded(llama)
    base._shared.cache = PrefixStateCache(1 << 20)
    llama.input_ids = list(range(100, 140))  # type: ignore[attr-defined]
    saved: list[str] = []
    monkeypatch.setattr(
        LlamaCppChatModel, "_save", lambda self: saved.append(base._shared.active_key)
    )
    base.invoke(PROMPT)
    base.with_adapter().invoke(PROMPT)
    base.invoke(PROMPT)
    assert saved == ["", "/runs/a/adapter.gguf"]


@pytest.fixture
def served(
    make_settings: Callable[..., Settings], llama: SwitchingLlama, tmp_path: Path
) -> tuple[Settings, LlamaCppChatModel]:
    settings = make_settings(
        model={
            "backend": "llamacpp",
            "gguf_path": str(tmp_path / "m.gguf"),
            "lora_path": str(tmp_path / "adapter.gguf"),
            "state_cache_mb": 0,
        },
        safety={"judge": "all", "check_replies": True},  # the judge asks the model
    )
    model = Deps(settings).model
    assert isinstance(model, LlamaCppChatModel)
    model._shared.llama = llama
    model._shared.adapter = ADAPTER
    return settings, model


def test_deps_give_the_reply_the_adapter_and_everything_else_the_base(
    served: tuple[Settings, LlamaCppChatModel],
) -> None:
    settings, _ = served
    deps = Deps(settings)
    assert isinstance(deps.model, LlamaCppChatModel) and not deps.model.use_adapter
    assert isinstance(deps.reply_model, LlamaCppChatModel) and deps.reply_model.use_adapter
    assert deps.reply_model._shared is deps.model._shared


@pytest.mark.parametrize("level", ["strict", "moderate", "relaxed"])
def test_in_a_turn_only_the_reply_runs_with_the_adapter(
    served: tuple[Settings, LlamaCppChatModel], llama: SwitchingLlama, level: str
) -> None:
    settings, _ = served
    graph = build_graph(settings, checkpointer=InMemorySaver())
    state = graph.invoke(
        {"messages": [("user", "What is the capital of Peru?")]},
        thread(),
        context={"safety_level": level, "retrieval": False},
    )
    assert state["messages"][-1].text == "Hello!"
    replies = [a for a, m in llama.calls if m[-1]["content"] == "What is the capital of Peru?"]
    others = [a for a, m in llama.calls if m[-1]["content"] != "What is the capital of Peru?"]
    assert replies == [ADDRESS]  # the reply, once, with the adapter
    assert others  # the judge asked (its canaries at least)
    assert all(a is None for a in others)  # ... on the base weights


def test_the_masking_wrapper_keeps_the_adapter_of_the_model_it_wraps(
    llama: SwitchingLlama,
) -> None:
    base = loaded(llama)
    masked = MaskingChatModel(inner=base.with_adapter(), masker=_PassThrough)
    assert masked.invoke(PROMPT).text == "Hello!"
    assert [a for a, _ in llama.calls] == [ADDRESS]


class _PassThrough:
    def __init__(self) -> None:
        self.masked: list[str] = []

    def feed(self, piece: str) -> str:
        return piece

    def finish(self) -> str:
        return ""
