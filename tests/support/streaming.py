"""Streaming in pieces: random chunkings of a text, a fake model that streams that way,
and what a streamed turn put on the screen.

A real model streams tokens, which end anywhere in a word: between two letters, between a
letter and its combining mark, inside an emoji sequence. The project's fake model streams
word by word; :class:`PieceModel` streams the same reply in pieces of random sizes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from tests.conftest import thread
from tools.models import FakeChatModel


def pieces_of(text: str, rnd: random.Random, low: int, high: int) -> list[str]:
    """``text`` cut into consecutive pieces of ``low`` to ``high`` characters."""
    pieces, i = [], 0
    while i < len(text):
        n = rnd.randint(low, high)
        pieces.append(text[i : i + n])
        i += n
    return pieces


class PieceModel(FakeChatModel):
    """The fake model, streaming its reply in pieces of 1 to ``longest`` characters.

    The reply is what :class:`FakeChatModel` would stream (its stop sequences and token
    limit apply, and the call is recorded the same way), cut anew; the cuts depend on the
    reply's length only, so a failing case repeats.
    """

    longest: int = 3
    """The longest piece, in characters."""

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        words = super()._stream(messages, stop, run_manager, **kwargs)
        text = "".join(chunk.text for chunk in words)
        for piece in pieces_of(text, random.Random(len(text)), 1, self.longest):
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))


def screen_of_turn(graph: Any, message: str, level: str, name: str = "t1") -> str:
    """Run one turn on thread ``name`` and return what its reply streamed to the screen.

    That is the text of the ``generate`` node's message chunks, as the CLI and the chat
    page show them.
    """
    screen = ""
    for chunk, meta in graph.stream(
        {"messages": [("user", message)]},
        thread(name),
        context={"safety_level": level},
        stream_mode="messages",
    ):
        if meta["langgraph_node"] == "generate" and isinstance(chunk, AIMessageChunk):
            screen += chunk.text
    return screen
