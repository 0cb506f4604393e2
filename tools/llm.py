"""Chat models: llama.cpp over any GGUF, a local transformers directory, or a fake.

All backends are LangChain chat models, so LangGraph streams their tokens
(``stream_mode="messages"``) and per-call sampling knobs arrive as keyword arguments
(``temperature``, ``top_p``, ``max_new_tokens``, ``do_sample``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from graph.settings import Settings
from tools.model_files import DEFAULT_MODEL, ModelFileError, prepare_split_model

log = logging.getLogger("assistant.llm")

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


class ModelLoadError(RuntimeError):
    """The configured model cannot be loaded; the message says what to do."""


def _role(message: BaseMessage) -> str:
    try:
        return _ROLES[message.type]
    except KeyError:
        raise ValueError(f"unsupported message type for a chat prompt: {message.type}") from None


def to_chat_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """Convert LangChain messages to ``{"role", "content"}`` dicts for a chat template."""
    return [{"role": _role(m), "content": m.text} for m in messages]


def _stop_at(text: str, stop: list[str] | None) -> tuple[str, bool]:
    if not stop:
        return text, False
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class LlamaCppChatModel(BaseChatModel):
    """A GGUF model run in-process by llama.cpp (llama-cpp-python).

    The model is loaded on first use, not at construction, so building the graph is
    instant. llama.cpp keeps the KV cache of the previous prompt and reuses its longest
    common prefix, so a growing conversation only pays for its new tokens.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str | None = None
    """GGUF file; None = resolve with ``path_resolver`` at load time."""
    path_resolver: Callable[[], Path] | None = None
    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 256
    temperature: float = 0.2
    top_p: float = 0.9
    max_new_tokens: int = 256
    do_sample: bool = True
    repeat_penalty: float = 1.1
    seed: int = -1

    _llama: Any = PrivateAttr(default=None)
    # llama.cpp contexts are not thread-safe; the dev server runs turns concurrently.
    _lock: threading.RLock = PrivateAttr(default_factory=threading.RLock)

    @property
    def _llm_type(self) -> str:
        return "llamacpp"

    @property
    def llama(self) -> Any:
        """The loaded ``llama_cpp.Llama`` (loads it on first access)."""
        with self._lock:
            if self._llama is None:
                self._llama = self._load()
            return self._llama

    def _load(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelLoadError(
                "llama-cpp-python is not installed: run `make install` (it builds llama.cpp, "
                "~7 min on 2 cores) or set ASSISTANT_MODEL__BACKEND=fake"
            ) from exc
        path = Path(self.model_path) if self.model_path else None
        if path is None and self.path_resolver is not None:
            path = self.path_resolver()
        if path is None or not path.is_file():
            raise ModelLoadError(f"GGUF model file not found: {path}")
        started = time.perf_counter()
        try:
            llama = Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads or os.cpu_count() or 1,
                n_batch=self.n_batch,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"llama.cpp cannot load {path}: {exc}") from exc
        log.info("loaded %s in %.1f s", path.name, time.perf_counter() - started)
        return llama

    def get_num_tokens(self, text: str) -> int:
        """Count tokens with the model's own tokenizer."""
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _sampling(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        do_sample = kwargs.get("do_sample", self.do_sample)
        return {
            # temperature 0 makes llama.cpp sample greedily
            "temperature": kwargs.get("temperature", self.temperature) if do_sample else 0.0,
            "top_p": kwargs.get("top_p", self.top_p),
            "max_tokens": kwargs.get("max_new_tokens", self.max_new_tokens),
            "repeat_penalty": kwargs.get("repeat_penalty", self.repeat_penalty),
            "seed": kwargs.get("seed", self.seed),
        }

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        llama = self.llama
        with self._lock:
            chunks = llama.create_chat_completion(
                messages=to_chat_dicts(messages), stream=True, stop=stop, **self._sampling(kwargs)
            )
            finish = None
            for chunk in chunks:
                choice = chunk["choices"][0]
                finish = choice.get("finish_reason") or finish
                text = choice["delta"].get("content")
                if text:
                    yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="", response_metadata={"finish_reason": finish, "model": self._llm_type}
            )
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _collect(self._stream(messages, stop, run_manager, **kwargs))


class FakeChatModel(BaseChatModel):
    """A canned-reply chat model for routing and safety without a real model.

    Replies word by word (so streaming paths are exercised), counts tokens by words and
    punctuation, and records every prompt it was given in ``calls``.
    """

    reply: str | Callable[[list[BaseMessage]], str] = "This is a canned reply from the fake model."
    calls: list[list[BaseMessage]] = Field(default_factory=list, repr=False)
    call_kwargs: list[dict[str, Any]] = Field(default_factory=list, repr=False)
    delay: float = 0.0
    """Seconds to wait per streamed word (benchmarks use 0)."""

    @property
    def _llm_type(self) -> str:
        return "fake"

    def get_num_tokens(self, text: str) -> int:
        """Approximate tokens: words and punctuation marks."""
        return len(re.findall(r"\w+|[^\w\s]", text))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self.calls.append(list(messages))
        self.call_kwargs.append(dict(kwargs))
        text = self.reply(messages) if callable(self.reply) else self.reply
        text, _ = _stop_at(text, stop)
        limit = kwargs.get("max_new_tokens")
        words = re.findall(r"\S+\s*", text)
        for word in words[:limit] if limit else words:
            if self.delay:
                time.sleep(self.delay)
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _collect(self._stream(messages, stop, run_manager, **kwargs))


def _collect(chunks: Iterator[ChatGenerationChunk]) -> ChatResult:
    merged: ChatGenerationChunk | None = None
    for chunk in chunks:
        merged = chunk if merged is None else merged + chunk
    message = AIMessage(
        content=merged.message.content if merged else "",
        response_metadata=merged.message.response_metadata if merged else {},
    )
    return ChatResult(generations=[ChatGeneration(message=message)])


def _llamacpp(settings: Settings) -> LlamaCppChatModel:
    cfg = settings.model

    def default_model() -> Path:
        try:
            return prepare_split_model(settings.cache_dir / "models", DEFAULT_MODEL)
        except ModelFileError as exc:
            raise ModelLoadError(f"default model not ready: {exc}") from exc

    return LlamaCppChatModel(
        model_path=str(cfg.gguf_path) if cfg.gguf_path else None,
        path_resolver=None if cfg.gguf_path else default_model,
        n_ctx=cfg.n_ctx,
        n_threads=cfg.n_threads,
        n_batch=cfg.n_batch,
    )


def _model_key(settings: Settings) -> tuple[Any, ...]:
    # Sampling is not part of the key: it arrives with every call (see Deps.sampling).
    return (settings.model.model_dump_json(), str(settings.cache_dir))


_MODELS: dict[tuple[Any, ...], BaseChatModel] = {}
_MODELS_LOCK = threading.Lock()


def _new_model(settings: Settings) -> BaseChatModel:
    backend = settings.model.backend
    if backend == "fake":
        return FakeChatModel(reply=settings.model.fake_reply)
    if backend == "huggingface":
        try:
            from tools.hf_backend import load_huggingface_chat_model
        except ImportError as exc:
            raise ModelLoadError(
                f"the huggingface backend needs its extra: pip install -e '.[huggingface]' ({exc})"
            ) from exc
        return load_huggingface_chat_model(settings)
    return _llamacpp(settings)


def get_chat_model(settings: Settings) -> BaseChatModel:
    """The chat model for these settings, shared by every graph of the process.

    Loading a GGUF takes seconds and gigabytes, so graphs built with the same model
    settings share one instance (the weights load lazily on first use); sampling knobs
    are passed with each call, so they do not need an instance of their own.
    """
    key = _model_key(settings)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = _new_model(settings)
        return _MODELS[key]
