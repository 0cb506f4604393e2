"""Fine-tuning data: chat-format JSONL, validated line by line, split with a seed.

One example per line: ``{"messages": [{"role": "system"|"user"|"assistant", "content":
"..."}, ...]}``. An optional system turn comes first, then user and assistant turns
alternate, starting with a user turn and ending with an assistant turn. Loss is taken
only on the assistant turns (:func:`tokenize_example`).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tools.text import validation_error_line

IGNORE_INDEX = -100
"""Label of a token the loss skips (the convention of torch's cross-entropy)."""


class DatasetError(ValueError):
    """A dataset cannot be used; ``problems`` holds one ``file:line: what`` per bad line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = self.problems[:20]
        more = len(self.problems) - len(shown)
        super().__init__("\n".join(shown) + (f"\n... and {more} more" if more > 0 else ""))


class Turn(BaseModel):
    """One message of a conversation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, content: str) -> str:
        if not content.strip():
            raise ValueError("content is blank")
        return content


class Example(BaseModel):
    """One training conversation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: list[Turn] = Field(min_length=2)

    @field_validator("messages")
    @classmethod
    def _turn_order(cls, messages: list[Turn]) -> list[Turn]:
        turns = messages[1:] if messages and messages[0].role == "system" else messages
        for index, turn in enumerate(turns):
            expected = "user" if index % 2 == 0 else "assistant"
            if turn.role != expected:
                position = index + (len(messages) - len(turns))
                if turn.role == "system":
                    raise ValueError(f"turn {position}: a system turn may only come first")
                article = "an" if expected == "assistant" else "a"
                raise ValueError(
                    f"turn {position}: expected {article} {expected} turn, got {turn.role}"
                )
        if not turns or turns[-1].role != "assistant":
            raise ValueError("the last turn must be an assistant turn (the text to learn)")
        return messages

    def as_dicts(self) -> list[dict[str, str]]:
        """The turns as ``{"role", "content"}`` dicts (what chat templates take)."""
        return [{"role": t.role, "content": t.content} for t in self.messages]


def load_dataset(path: Path) -> list[Example]:
    """Read and validate a chat-format JSONL file.

    Blank lines are skipped. Every bad line is reported, not just the first.

    Args:
        path: The JSONL file.

    Returns:
        The examples in file order.

    Raises:
        DatasetError: The file cannot be read, is empty, or has bad lines (one
            ``file:line: what is wrong`` per line).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError([f"{path}: cannot read the file: {exc}"]) from None
    examples: list[Example] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(raw, dict):
            problems.append(f"{path}:{number}: expected an object with 'messages'")
            continue
        try:
            examples.append(Example.model_validate(raw))
        except ValidationError as exc:
            problems.append(f"{path}:{number}: {validation_error_line(exc)}")
    if problems:
        raise DatasetError(problems)
    if not examples:
        raise DatasetError([f"{path}: no examples"])
    return examples


def dataset_hash(path: Path) -> str:
    """SHA-256 of the dataset file's bytes (a run record names the exact data)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split(
    examples: Sequence[Example], validation_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """A seeded train/validation split; the same seed gives the same split.

    At least one example stays in training; with ``validation_fraction`` > 0 and two or
    more examples, at least one goes to validation.

    Returns:
        ``(train, validation)``, each in file order.

    Raises:
        ValueError: ``validation_fraction`` is outside [0, 1).
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = round(len(examples) * validation_fraction)
    if validation_fraction > 0 and len(examples) > 1:
        n_val = min(max(n_val, 1), len(examples) - 1)
    held = set(order[:n_val])
    train = [e for i, e in enumerate(examples) if i not in held]
    validation = [e for i, e in enumerate(examples) if i in held]
    return train, validation


class ChatTokenizer(Protocol):
    """The part of a transformers tokenizer :func:`tokenize_example` uses."""

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any:
        """Render (and with ``tokenize=True`` tokenise) a conversation."""
        ...

    def decode(self, token_ids: Any, **kwargs: Any) -> Any:
        """Token ids back to text."""
        ...


@dataclass(frozen=True)
class Tokenized:
    """One example as model input: token ids, and labels with non-assistant tokens ignored."""

    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        """How many tokens the loss is taken on."""
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def _ids(tokenizer: ChatTokenizer, turns: list[dict[str, str]], prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        turns, tokenize=True, add_generation_prompt=prompt, return_dict=True
    )
    return list(out["input_ids"])


def tokenize_example(tokenizer: ChatTokenizer, example: Example, max_length: int) -> Tokenized:
    """Render an example with the model's chat template; labels only on assistant turns.

    Each assistant turn's tokens are found as the difference between the rendering up
    to its generation prompt and the rendering including the turn, so this works for
    any template whose renderings of a conversation's prefixes are prefixes (ChatML,
    Llama, Qwen) without the template's ``{% generation %}`` markers, which SmolLM2's
    lacks. The end-of-turn token is learnt too, so the model learns to stop.

    Args:
        tokenizer: A tokenizer with a chat template.
        example: The conversation.
        max_length: Longest token sequence kept (the end is cut).

    Returns:
        Token ids and labels of equal length.

    Raises:
        ValueError: The template does not render prefixes as prefixes.
    """
    turns = example.as_dicts()
    ids = _ids(tokenizer, turns, prompt=False)
    labels = [IGNORE_INDEX] * len(ids)
    for index, turn in enumerate(turns):
        if turn["role"] != "assistant":
            continue
        start = len(_ids(tokenizer, turns[:index], prompt=True))
        end = len(_ids(tokenizer, turns[: index + 1], prompt=False))
        if ids[:end] != _ids(tokenizer, turns[: index + 1], prompt=False):
            raise ValueError("the chat template does not render prefixes as prefixes")
        # The template's trailing newline after the end-of-turn token is not learnt.
        while end > start and not str(tokenizer.decode([ids[end - 1]])).strip():
            end -= 1
        labels[start:end] = ids[start:end]
    return Tokenized(ids[:max_length], labels[:max_length])
