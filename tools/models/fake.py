"""A canned-reply chat model: routing, safety, the CLI and the tests without real weights."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import Field

from tools.models.base import Prefill, collect, stop_at


class FakeChatModel(Prefill, BaseChatModel):
    """A canned-reply chat model for routing and safety without a real model.

    Replies word by word (so streaming paths are exercised), ends with ``finish_reason``
    ``length`` when ``max_new_tokens`` words cut the reply (else ``stop``), counts tokens
    by words and punctuation, and records every prompt it was given in ``calls`` (and every prefix
    it was asked to warm in ``prefills``; warming does nothing else).
    """

    reply: str | Callable[[list[BaseMessage]], str] = "This is a canned reply from the fake model."
    calls: list[list[BaseMessage]] = Field(default_factory=list, repr=False)
    call_kwargs: list[dict[str, Any]] = Field(default_factory=list, repr=False)
    prefills: list[list[BaseMessage]] = Field(default_factory=list, repr=False)
    delay: float = 0.0
    """Seconds to wait per streamed word (benchmarks use 0)."""
    finish_reason: str | None = None
    """What the last chunk says of why the reply ended; None: ``length`` when
    ``max_new_tokens`` words cut it, else ``stop``."""

    @property
    def _llm_type(self) -> str:
        return "fake"

    def get_num_tokens(self, text: str) -> int:
        """Approximate tokens: words and punctuation marks."""
        return len(re.findall(r"\w+|[^\w\s]", text))

    def prefill(self, messages: Sequence[BaseMessage], *, persist: bool = False) -> int:
        """Record the prefix; the fake keeps no prompt state, so 0 tokens are ready."""
        self.prefills.append(list(messages))
        return 0

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
        text, _ = stop_at(text, stop)
        limit = kwargs.get("max_new_tokens")
        words = re.findall(r"\S+\s*", text)
        cut = limit is not None and 0 < limit < len(words)
        for word in words[:limit] if limit else words:
            if self.delay:
                time.sleep(self.delay)
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))
        # As the llama.cpp adapter does: the summariser and the API read why a reply ended.
        finish = self.finish_reason or ("length" if cut else "stop")
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", response_metadata={"finish_reason": finish})
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return collect(self._stream(messages, stop, run_manager, **kwargs))
