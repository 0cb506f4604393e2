"""The request body of ``POST /v1/chat/completions``: OpenAI's fields plus our extensions.

Strict types (a string where a number belongs is a 400, not a guess); fields OpenAI
defines that change nothing we promise (``frequency_penalty``, ``seed``, ``name``, ``tools``
the model may leave unused ...) are ignored, so any OpenAI client or front end can send its
usual body. A field that asks for what this assistant cannot give (stop sequences,
log probabilities, a JSON reply, a forced tool call, more than one choice, audio) is a 400
naming it (``unsupported_parameter`` or ``unsupported_value``, as OpenAI answers a model
that lacks a feature): ignored, the client would take a reply that is not what it asked
for as if it were. Sent with the value that asks for nothing (``stop: []``, ``logprobs:
false``, ``response_format: {"type": "text"}``, ``tool_choice: "auto"``, ``n: 1``), it passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from graph.settings import SafetyLevel


class _Body(BaseModel):
    # OpenAI accepts null for an optional field ("stream": null): it means the default.
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _null_is_the_default(cls, data: object) -> object:
        if isinstance(data, dict):
            return {
                key: value
                for key, value in data.items()
                if value is not None
                or key not in cls.model_fields
                or cls.model_fields[key].is_required()
            }
        return data


class ContentPart(_Body):
    """One part of a message's content; only text parts are understood."""

    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    """One message of the conversation the client sends."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None

    @field_validator("role", mode="before")
    @classmethod
    def _no_tool_results(cls, role: object) -> object:
        # A tool's result answers a tool call this assistant never makes: said so, not
        # "Input should be 'system', 'developer', 'user' or 'assistant'".
        if role in ("tool", "function"):
            raise PydanticCustomError(
                "unsupported_value",
                "{role} messages are not supported: this assistant calls no tools",
                {"role": role},
            )
        return role

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, content: object) -> object:
        # Checked before the union is tried: otherwise an image part is reported as
        # "Input should be a valid string" (the union's first member).
        if isinstance(content, list):
            for at, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if isinstance(kind, str) and kind != "text":
                    raise PydanticCustomError(
                        "unsupported_value",
                        "only text content parts are supported (part {at} is {kind})",
                        {"at": at, "kind": repr(kind[:40])},
                    )
        return content

    @property
    def text(self) -> str:
        """The message's text (text parts joined with newlines)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class StreamOptions(_Body):
    """OpenAI's ``stream_options``: a last chunk with the usage when asked."""

    include_usage: bool = False


class ChatRequest(_Body):
    """The body of ``POST /v1/chat/completions``.

    ``safety_level`` is our extension (strict, moderate or relaxed); ``metadata.thread_id``
    names the conversation to continue, like the ``X-Thread-Id`` header (both checked where
    the request becomes a turn, ``apps.api.service.to_turn``).
    """

    model: str | None = Field(None, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)
    n: int | None = Field(None, description="Only one choice is generated.")
    user: str | None = Field(None, min_length=1, max_length=256)
    metadata: dict[str, str] | None = None
    safety_level: SafetyLevel | None = None
    # OpenAI's fields this assistant cannot honour: any value but the one that asks for
    # nothing is refused (see _UNSUPPORTED); typed loosely, the check reads the raw value.
    stop: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    response_format: Any = None
    tool_choice: Any = None
    function_call: Any = None
    modalities: Any = None
    audio: Any = None

    @field_validator("n", mode="after")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        if n is not None and n != 1:
            raise PydanticCustomError(
                "unsupported_value",
                "only one choice is generated: n must be 1 (got {n}); send n requests instead",
                {"n": n},
            )
        return n

    @field_validator(
        "stop",
        "logprobs",
        "top_logprobs",
        "response_format",
        "tool_choice",
        "function_call",
        "modalities",
        "audio",
        mode="before",
    )
    @classmethod
    def _unsupported(cls, value: object, info: ValidationInfo) -> object:
        name = info.field_name or ""
        asks_nothing, why = _UNSUPPORTED[name]
        if not asks_nothing(value):
            raise PydanticCustomError(
                "unsupported_parameter", "this assistant does not support it: {why}", {"why": why}
            )
        return None


def _is(*values: object) -> Callable[[object], bool]:
    # Equality by type too: 0 and False are different answers to "logprobs".
    return lambda value: any(type(value) is type(v) and value == v for v in values)


_UNSUPPORTED: dict[str, tuple[Callable[[object], bool], str]] = {
    "stop": (
        _is("", []),
        "the reply ends where the model ends it (max_tokens bounds its length)",
    ),
    "logprobs": (_is(False), "the model's token probabilities are not returned"),
    "top_logprobs": (_is(0), "the model's token probabilities are not returned"),
    "response_format": (
        _is({"type": "text"}),
        'replies are plain text; only {"type": "text"} is accepted',
    ),
    "tool_choice": (
        _is("auto", "none"),
        'this assistant calls no tools, so it cannot be made to; only "auto" or "none"',
    ),
    "function_call": (
        _is("auto", "none"),
        'this assistant calls no functions, so it cannot be made to; only "auto" or "none"',
    ),
    "modalities": (_is(["text"]), 'replies are text only; only ["text"] is accepted'),
    "audio": (lambda value: False, "replies are text only"),
}
"""Per field: whether a value asks for nothing (it passes), and why any other is refused."""
