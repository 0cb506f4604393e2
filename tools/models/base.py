"""What every chat-model backend shares: the error, chat-dict conversion, chunk merging."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

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


def stop_at(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """Cut ``text`` at the first stop sequence: (text before it, whether one was found)."""
    if not stop:
        return text, False
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def collect(chunks: Iterator[ChatGenerationChunk]) -> ChatResult:
    """Merge a stream of chunks into one chat result (for ``_generate``)."""
    merged: ChatGenerationChunk | None = None
    for chunk in chunks:
        merged = chunk if merged is None else merged + chunk
    message = AIMessage(
        content=merged.message.content if merged else "",
        response_metadata=merged.message.response_metadata if merged else {},
    )
    return ChatResult(generations=[ChatGeneration(message=message)])
