"""A chat-model wrapper that masks the reply while it streams.

Masking only the final message would let the raw words reach the screen token by token,
and masking each piece alone misses words split over pieces ("f u c k", "blow job"). The
wrapper hands every piece to a stream masker (:class:`StreamMasker`, e.g.
:class:`tools.guardrails.streaming.StreamMasker`), which holds back what may still change
and releases text that is final, so the joined stream is exactly the stored reply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from tools.models.base import Prefill, prefill


class StreamMasker(Protocol):
    """Masks one reply as it streams in."""

    masked: list[str]
    """The words masked so far, as the model wrote them."""

    def feed(self, piece: str) -> str:
        """Take the next piece; return what is final now, masked."""
        ...

    def finish(self) -> str:
        """The reply is complete: return the rest, masked."""
        ...


class MaskingChatModel(Prefill, BaseChatModel):
    """Streams ``inner``'s reply through a fresh ``masker()`` per reply.

    The inner model is called without callbacks, so only masked text reaches LangGraph's
    ``messages`` stream. The final message carries ``response_metadata["masked"]``: the
    words the masker masked.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseChatModel
    masker: Callable[[], StreamMasker]

    @property
    def _llm_type(self) -> str:
        return f"masked-{self.inner._llm_type}"

    def get_num_tokens(self, text: str) -> int:
        """Count with the inner model's tokenizer."""
        return self.inner.get_num_tokens(text)

    def prefill(self, messages: Sequence[BaseMessage], *, persist: bool = False) -> int:
        """Warm the prefix on the inner model (masking changes only the reply)."""
        return prefill(self.inner, messages, persist=persist)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        masker = self.masker()
        metadata: dict[str, Any] = {}
        for chunk in self.inner._stream(messages, stop=stop, run_manager=None, **kwargs):
            metadata.update(chunk.message.response_metadata)
            ready = masker.feed(chunk.message.text)
            if ready:
                yield ChatGenerationChunk(message=AIMessageChunk(content=ready))
        rest = masker.finish()
        metadata["masked"] = list(masker.masked)
        yield ChatGenerationChunk(message=AIMessageChunk(content=rest, response_metadata=metadata))

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
