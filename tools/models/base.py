"""What every chat-model backend shares: the error, chat dicts, chunk merging, prefill."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


class ModelLoadError(RuntimeError):
    """The configured model cannot be loaded; the message says what to do."""


class Prefill:
    """Mixin for chat models: ``prefill(messages)`` warms a prompt prefix.

    Backends that keep evaluated prompt state (llama.cpp) override it; for the others
    it does nothing, so callers need not know which backend they have.
    """

    def prefill(self, messages: Sequence[BaseMessage], *, persist: bool = False) -> int:
        """Evaluate the prompt prefix ``messages`` now, so a later call resumes from it.

        The prefix is the chat-template rendering of ``messages`` without the generation
        prompt, i.e. what the next call's prompt starts with when it appends messages.

        Args:
            messages: The leading messages of a prompt to come (system, summary, turns).
            persist: The prefix is fixed (the same in every process): a backend that can
                may keep its state on disk for the next process.

        Returns:
            How many prompt tokens are now ready to resume from; 0 if the backend keeps
            no prompt state.
        """
        return 0


class FirstTokenScores:
    """Mixin for chat models that can say how likely each reply opening is, unsampled.

    A one-word classifier (the safety judge) then gets a probability instead of a coin
    flip at 0.5, so its threshold can be calibrated.
    """

    def first_token_probabilities(
        self, messages: Sequence[BaseMessage], candidates: Sequence[str]
    ) -> dict[str, float] | None:
        """The probability that the reply to ``messages`` starts with each candidate.

        Args:
            messages: The whole prompt (the reply is the next assistant turn).
            candidates: Reply openings, e.g. ``["safe", "unsafe"]``; each is scored by
                its first token, so their first tokens must differ.

        Returns:
            ``{candidate: probability}`` under the model's next-token distribution (not
            renormalised: they need not sum to 1); None when the backend cannot score.

        Raises:
            ValueError: Two candidates start with the same token.
        """
        return None

    def next_token_probabilities(
        self, messages: Sequence[BaseMessage], reply_start: str, candidates: Sequence[str]
    ) -> dict[str, float] | None:
        """The probability of each candidate token right after a given start of the reply.

        What a classifier whose answer has a fixed opening needs at the position after
        it: the safety judge's category code after ``"unsafe S"``.

        Args:
            messages: The whole prompt (the reply is the next assistant turn).
            reply_start: What the reply is taken to begin with (``"unsafe S"``).
            candidates: Continuations (``"1"``, ``"2"``, ...), each scored by its first
                token, so their first tokens must differ.

        Returns:
            ``{candidate: probability}`` (not renormalised); None when the backend cannot
            score a reply it did not write (the default).

        Raises:
            ValueError: Two candidates start with the same token.
        """
        return None


def next_token_probabilities(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    reply_start: str,
    candidates: Sequence[str],
) -> dict[str, float] | None:
    """:meth:`FirstTokenScores.next_token_probabilities` on any chat model (None if it cannot)."""
    if isinstance(model, FirstTokenScores):
        return model.next_token_probabilities(messages, reply_start, candidates)
    return None


class Adapter:
    """Mixin for chat models that can serve a LoRA adapter on some calls and not others.

    The adapter tunes the reply; the calls that judge or rewrite (the safety judge, the
    summariser, the query rewriter) keep the base weights, which their prompts and
    thresholds were written and calibrated for.
    """

    def with_adapter(self) -> BaseChatModel:
        """Return the model with its adapter applied to every call (itself if it has none)."""
        raise NotImplementedError


def with_adapter(model: BaseChatModel) -> BaseChatModel:
    """``model`` with its LoRA adapter on, for the reply; ``model`` itself if it has none.

    Works on any chat model (a fake, a remote server, a wrapper), so the reply node can
    ask for the adapter without knowing the backend.
    """
    if isinstance(model, Adapter):
        return model.with_adapter()
    return model


def first_token_probabilities(
    model: BaseChatModel, messages: Sequence[BaseMessage], candidates: Sequence[str]
) -> dict[str, float] | None:
    """:meth:`FirstTokenScores.first_token_probabilities` on any chat model (None if it cannot)."""
    if isinstance(model, FirstTokenScores):
        return model.first_token_probabilities(messages, candidates)
    return None


def prefill(model: BaseChatModel, messages: Sequence[BaseMessage], *, persist: bool = False) -> int:
    """Warm ``messages`` as a prompt prefix on any chat model (0 if it cannot).

    Works on models without :class:`Prefill` too (a LangChain fake in a test, a wrapper
    of someone else's), so nodes can call it on whatever model they were given.
    """
    if isinstance(model, Prefill):
        return model.prefill(messages, persist=persist)
    return 0


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
