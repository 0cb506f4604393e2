"""LlamaCppChatModel without weights: a recording stand-in for ``llama_cpp.Llama``.

These hold what the model must do that langchain-community's ``ChatLlamaCpp`` does not
(see the module docstring of :mod:`tools.models.llamacpp`): load nothing until first
use, take our sampling knobs per call, pass ``stop`` on ``invoke`` as well as on
``stream``, count tokens with the model's tokenizer, and run one call at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage

from graph import build_graph
from graph.settings import Settings
from tools.models import LlamaCppChatModel, ModelLoadError, get_chat_model

PROMPT = [SystemMessage("Be brief."), HumanMessage("Say hello.")]


class RecordingLlama:
    """Streams fixed pieces like ``Llama.create_chat_completion`` and records each call."""

    def __init__(self, pieces: tuple[str, ...] = ("Hel", "lo", "!"), pause: float = 0.0):
        self.pieces = pieces
        self.pause = pause
        self.calls: list[dict[str, Any]] = []
        self.active = 0
        self.most_active = 0
        self._count = threading.Lock()

    def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(kwargs)
        return self._chunks(kwargs.get("stop") or [])

    def _chunks(self, stop: list[str]) -> Iterator[dict[str, Any]]:
        with self._count:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            text = ""
            for piece in self.pieces:
                time.sleep(self.pause)  # leaves room for another thread to overlap
                if any(s in text + piece for s in stop):
                    yield {"choices": [{"delta": {}, "finish_reason": "stop"}]}
                    return
                text += piece
                yield {"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
            yield {"choices": [{"delta": {}, "finish_reason": "length"}]}
        finally:
            with self._count:
                self.active -= 1

    def tokenize(self, data: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        assert add_bos is False and special is True
        return list(data)  # one "token" per byte: nothing like GPT-2's count


def model_with(llama: RecordingLlama, **fields: Any) -> LlamaCppChatModel:
    model = LlamaCppChatModel(model_path="/nowhere/model.gguf", **fields)
    model._shared.llama = llama  # as if loaded
    return model


def test_constructing_loads_nothing_and_resolves_the_path_on_first_use(tmp_path: Path) -> None:
    resolved: list[Path] = []

    def resolver() -> Path:
        resolved.append(tmp_path / "missing.gguf")
        return resolved[-1]

    model = LlamaCppChatModel(path_resolver=resolver)
    assert resolved == []
    with pytest.raises(ModelLoadError, match=r"missing\.gguf"):
        model.invoke("hi")
    assert resolved == [tmp_path / "missing.gguf"]


def test_a_graph_on_a_missing_model_file_builds(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(model={"backend": "llamacpp", "gguf_path": str(tmp_path / "no.gguf")})
    model = get_chat_model(settings)
    assert isinstance(model, LlamaCppChatModel)
    assert "generate" in build_graph(settings).get_graph().nodes
    with pytest.raises(ModelLoadError, match="not found"):
        model.get_num_tokens("hello")


@pytest.mark.parametrize(
    ("fields", "call", "expected"),
    [
        ({}, {}, {"temperature": 0.2, "top_p": 0.9, "max_tokens": 256, "seed": -1}),
        ({}, {"do_sample": False, "temperature": 0.9}, {"temperature": 0.0}),
        ({"do_sample": False}, {"do_sample": True, "temperature": 0.7}, {"temperature": 0.7}),
        ({"do_sample": False}, {"temperature": 0.7}, {"temperature": 0.0}),
        ({}, {"max_new_tokens": 12}, {"max_tokens": 12}),
        ({"max_new_tokens": 40}, {}, {"max_tokens": 40}),
        ({}, {"top_p": 0.5, "repeat_penalty": 1.0, "seed": 7}, {"top_p": 0.5, "seed": 7}),
        ({"repeat_penalty": 1.3}, {}, {"repeat_penalty": 1.3}),
    ],
)
@pytest.mark.parametrize("how", ["invoke", "stream"])
def test_sampling_knobs_reach_llama_cpp_under_its_names(
    fields: dict[str, Any], call: dict[str, Any], expected: dict[str, Any], how: str
) -> None:
    llama = RecordingLlama()
    model = model_with(llama, **fields)
    if how == "invoke":
        model.invoke(PROMPT, **call)
    else:
        list(model.stream(PROMPT, **call))
    (sent,) = llama.calls
    assert {key: sent[key] for key in expected} == expected
    assert "max_new_tokens" not in sent and "do_sample" not in sent
    assert sent["stream"] is True
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello."},
    ]


@pytest.mark.parametrize(("stop", "text"), [(["lo"], "Hel"), (["!"], "Hello"), (None, "Hello!")])
def test_stop_is_honoured_by_invoke_and_stream_alike(stop: list[str] | None, text: str) -> None:
    model = model_with(RecordingLlama())
    invoked = model.invoke(PROMPT, stop=stop)
    streamed = "".join(chunk.text for chunk in model.stream(PROMPT, stop=stop))
    assert invoked.text == streamed == text
    finish = "length" if stop is None else "stop"
    assert invoked.response_metadata["finish_reason"] == finish


def test_tokens_reach_callbacks_and_the_stream_ends_with_a_finish_reason() -> None:
    class Tokens(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: str | list[Any], **kwargs: Any) -> None:
            assert isinstance(token, str)
            self.tokens.append(token)

    handler = Tokens()
    model = model_with(RecordingLlama(pieces=("a", "b", "c", "d")))
    chunks = list(model.stream(PROMPT, config={"callbacks": [handler]}))
    assert [t for t in handler.tokens if t] == ["a", "b", "c", "d"]  # once each, in order
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert isinstance(merged, AIMessageChunk) and merged.text == "abcd"
    assert merged.response_metadata["finish_reason"] == "length"


@pytest.mark.parametrize("text", ["", "hello", "héllo wörld", "<|im_end|> tail"])
def test_tokens_are_counted_by_the_models_own_tokenizer(text: str) -> None:
    model = model_with(RecordingLlama())
    assert model.get_num_tokens(text) == len(text.encode("utf-8"))


def test_concurrent_calls_on_one_model_run_one_at_a_time() -> None:
    llama = RecordingLlama(pieces=("x",) * 5, pause=0.005)
    model = model_with(llama)
    texts: list[str] = []

    def turn() -> None:
        texts.append(model.invoke(PROMPT).text)

    threads = [threading.Thread(target=turn) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert texts == ["xxxxx"] * 3
    assert len(llama.calls) == 3
    assert llama.most_active == 1
