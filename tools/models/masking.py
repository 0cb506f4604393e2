"""A chat-model wrapper that masks profanity while the reply streams.

Masking only the final message would let the raw words reach the screen token by token,
so the wrapper buffers the stream up to the last word boundary and emits masked text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from tools.models.base import Prefill, prefill


def split_at_boundary(text: str) -> tuple[str, str]:
    """Split text after its last whitespace: (complete words, unfinished word)."""
    for index in range(len(text) - 1, -1, -1):
        if text[index].isspace():
            return text[: index + 1], text[index + 1 :]
    return "", text


class MaskingChatModel(Prefill, BaseChatModel):
    """Streams ``inner``'s reply with ``mask`` applied to whole words.

    The inner model is called without callbacks, so only masked tokens reach LangGraph's
    ``messages`` stream.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseChatModel
    mask: Callable[[str], str]

    @property
    def _llm_type(self) -> str:
        return f"masked-{self.inner._llm_type}"

    def get_num_tokens(self, text: str) -> int:
        """Count with the inner model's tokenizer."""
        return self.inner.get_num_tokens(text)

    def prefill(self, messages: Sequence[BaseMessage]) -> int:
        """Warm the prefix on the inner model (masking changes only the reply)."""
        return prefill(self.inner, messages)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        pending = ""
        metadata: dict[str, Any] = {}
        for chunk in self.inner._stream(messages, stop=stop, run_manager=None, **kwargs):
            metadata.update(chunk.message.response_metadata)
            pending += chunk.message.text
            ready, pending = split_at_boundary(pending)
            if ready:
                yield ChatGenerationChunk(message=AIMessageChunk(content=self.mask(ready)))
        yield ChatGenerationChunk(
            message=AIMessageChunk(content=self.mask(pending), response_metadata=metadata)
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        parts: list[str] = []
        metadata: dict[str, Any] = {}
        for chunk in self._stream(messages, stop, run_manager, **kwargs):
            parts.append(chunk.message.text)
            metadata.update(chunk.message.response_metadata)
        message = AIMessage(content="".join(parts), response_metadata=metadata)
        return ChatResult(generations=[ChatGeneration(message=message)])
