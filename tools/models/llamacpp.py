"""llama.cpp in-process (llama-cpp-python) over any GGUF file, as a LangChain chat model.

Why ours and not langchain-community's ``ChatLlamaCpp`` (0.4.2, checked on
llama-cpp-python 0.3.36 with SmolLM2-135M and the default Qwen2.5-Coder-1.5B):

- It loads the weights in its pydantic validator and needs ``model_path`` when it is
  built, so building the graph (dev server, picture) would load them (0.1 s and 0.8 s)
  and fail on a missing file; ours loads on first use and resolves the path then.
- Call keywords go to ``create_chat_completion`` unchanged: ``max_new_tokens`` and
  ``do_sample`` raise TypeError.
- ``invoke(..., stop=[...])`` ignores ``stop`` (with ``streaming=True``, its default,
  ``_generate`` calls ``_stream`` without it): the reply ran on to ``max_tokens``.
- It passes ``rope_freq_base=10000`` to ``Llama``, overriding the GGUF's own (1e5 in
  SmolLM2, 1e6 in Qwen2.5): SmolLM2's greedy "1, 2, 3, ..." for "list 1 to 200"
  became "1. 200", "2. 356", "3. 489" (passing 0, "from the model", fixes it).
- ``get_num_tokens`` falls back to GPT-2's tokenizer; offline it gave 0 for a text of
  5 model tokens (our prompt budget needs the model's own count).
- No lock: two threads streaming on one instance aborted the process
  (``GGML_ASSERT(i1 >= 0 && i1 < ne1)``) in 4 runs of 4. Ours serialises calls on the
  one context (without the lock it crashes too) and both threads get a lone call's text.
- langchain-community warns on import that it is sunset and no longer maintained.

It streams through callbacks once per token and reports ``finish_reason`` as ours
does, and decodes as fast: 128 greedy tokens on one shared context, 1 thread, median
of 6 runs in rotating order on a loaded 2-core machine (load average 2-3), tokens/s:
SmolLM2 raw ``create_chat_completion(stream=True)`` 41.1, ours 41.6, ChatLlamaCpp 41.6;
1.5B 5.0, 5.3, 5.2. Speed is no reason either way; a subclass fixing the above would
replace its validator, ``_generate``, ``_stream`` and ``get_num_tokens``: all of it
but the message conversion, which :func:`tools.models.base.to_chat_dicts` does.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

from tools.models.base import ModelLoadError, collect, to_chat_dicts

log = logging.getLogger("assistant.llm")


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
        return collect(self._stream(messages, stop, run_manager, **kwargs))
