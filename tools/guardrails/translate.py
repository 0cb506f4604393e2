"""The local model as a translator, so the input check reads other languages in English.

The semantic layer's embeddings and exemplars are English, and the small judge reads
other languages badly: a French poisoning request scored P(harmful) 0.33 with the judge
alone. A message that is not English is translated by the chat model first, and the
layers then read the translation as an English message (:class:`~tools.guardrails.guard.
InputGuard`).

The instruction is data (``prompts/safety_translate.md``) and comes first, then worked
examples as earlier turns (``prompts/safety_translate_examples.yaml``: a message, its
translation), the message last, so llama.cpp's prefix cache evaluates the instruction and
the examples once; each call pays for the message's tokens and the translation's. The
instruction alone did not hold the 1.5B model to translating: it softened ("umbringen",
to kill oneself, became "wrap around"; "avvelenare il cane", to poison the dog, "gently
pet the dog") or answered the request instead of translating it (2026-12-03); worked
examples show it harmful requests translated word for word, and idioms kept as idioms.
The call is greedy, tagged so its tokens never reach the chat's token stream, and capped
at a number of tokens proportional to the message (:func:`token_cap`).

A translation that cannot be trusted is None, and the caller reads the message as it is
written, as before: a model error, an empty reply, a reply cut at the cap (the rest of
the message would go unread), one that does not read as English (the model echoed the
message), or one far shorter than the message (a summary, a refusal or an answer, not a
translation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.constants import TAG_NOSTREAM
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.guardrails.semantic import looks_english
from tools.text import parse_yaml

__all__ = [
    "DEFAULT_TRANSLATE_EXAMPLES",
    "DEFAULT_TRANSLATE_PROMPT",
    "MAX_TOKENS",
    "Translation",
    "Translator",
    "token_cap",
]

log = logging.getLogger("assistant.safety")

DEFAULT_TRANSLATE_PROMPT = Path(__file__).resolve().parents[2] / "prompts" / "safety_translate.md"
DEFAULT_TRANSLATE_EXAMPLES = DEFAULT_TRANSLATE_PROMPT.with_name("safety_translate_examples.yaml")
# The longest translation asked for: about 1,000 characters of English. A longer message
# is cut at the cap and read as written.
MAX_TOKENS = 256
# A translation shorter than this share of the message's characters (and more than a few
# words short) is no translation: "Sure!", "I can't help with that.", a one-line gist.
_MIN_LENGTH_RATIO = 0.3
_OPEN, _CLOSE = "<<<", ">>>"


def token_cap(text: str) -> int:
    """How many tokens the translation of ``text`` may take.

    A third of the message's UTF-8 bytes, plus 16: an English token is about four
    characters, a Latin-script character one byte, a Cyrillic one two, a Chinese one
    three and worth a token or more of English. At most :data:`MAX_TOKENS`.
    """
    return min(MAX_TOKENS, len(text.encode("utf-8")) // 3 + 16)


@dataclass(frozen=True)
class Translation:
    """A message's English translation.

    Attributes:
        text: The translation.
        seconds: How long the model took.

    """

    text: str
    seconds: float


class Translator:
    """Translates a message into English with the chat model.

    Args:
        model: Returns the chat model (called when a translation runs, so building a graph
            never loads the weights).
        prompt_file: The fixed instruction (the system turn).
        examples_file: Worked examples, shown as earlier turns: a YAML mapping whose
            ``examples`` is a list of ``[message, English translation]`` pairs; None for
            none.

    Raises:
        ValueError: The prompt file cannot be read or is empty, or the examples file
            cannot be read or is not such a list.

    """

    def __init__(
        self,
        model: Callable[[], BaseChatModel],
        prompt_file: Path = DEFAULT_TRANSLATE_PROMPT,
        examples_file: Path | None = DEFAULT_TRANSLATE_EXAMPLES,
    ) -> None:
        try:
            self.system = prompt_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"safety translation prompt {prompt_file}: {exc}") from exc
        if not self.system:
            raise ValueError(f"safety translation prompt {prompt_file} is empty")
        self.examples = () if examples_file is None else _examples(examples_file)
        self._model = model

    def messages(self, text: str) -> list[SystemMessage | HumanMessage | AIMessage]:
        """The prompt: the fixed instruction, the worked examples, then the message quoted."""
        turns: list[SystemMessage | HumanMessage | AIMessage] = [SystemMessage(self.system)]
        for message, english in self.examples:
            turns += [HumanMessage(_quote(message)), AIMessage(english)]
        turns.append(HumanMessage(_quote(text)))
        return turns

    def translate(self, text: str) -> Translation | None:
        """The English translation of ``text``, or None when there is none to trust.

        Never raises: a model error is logged and gives None, as does a reply that is
        empty, cut at :func:`token_cap`, not English, or under a third of the message's
        length.
        """
        started = time.perf_counter()
        try:
            reply = self._model().invoke(
                self.messages(text),
                config={"tags": [TAG_NOSTREAM]},
                temperature=0.0,
                do_sample=False,
                max_new_tokens=token_cap(text),
            )
        except Exception as exc:  # a model error must not lose the check as written
            log.warning("safety translation failed, reading the message as written: %s", exc)
            return None
        seconds = time.perf_counter() - started
        translation = _clean(reply.text)
        why = None
        if not translation:
            why = "empty"
        elif reply.response_metadata.get("finish_reason") == "length":
            why = "cut at the token cap"
        elif not looks_english(translation):
            why = "not English"
        elif len(translation) < _MIN_LENGTH_RATIO * len(text) and len(text) - len(translation) > 20:
            why = "far shorter than the message"
        if why is not None:
            log.info("safety translation %s (%r), reading the message as written", why, reply.text)
            return None
        log.info("safety translation in %.2f s: %r", seconds, translation)
        return Translation(translation, seconds)


class _ExamplesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    version: int | None = None
    examples: list[
        Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=2, max_length=2)]
    ]


def _examples(path: Path) -> tuple[tuple[str, str], ...]:
    """The (message, translation) pairs of an examples file."""
    try:
        spec = _ExamplesFile.model_validate(parse_yaml(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"safety translation examples {path}: {exc}") from exc
    return tuple((message, english) for message, english in spec.examples)


def _quote(text: str) -> str:
    """``text`` between the quote marks, which it cannot close early."""
    quoted = text.replace(_OPEN, "< < <").replace(_CLOSE, "> > >")
    return f"{_OPEN}\n{quoted}\n{_CLOSE}"


def _clean(reply: str) -> str:
    """The translation without the quote marks a model may copy from the prompt."""
    text = reply.strip()
    if text.startswith(_OPEN):
        text = text[len(_OPEN) :]
    if text.endswith(_CLOSE):
        text = text[: -len(_CLOSE)]
    return text.strip()
