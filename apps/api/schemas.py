"""The request body of ``POST /v1/chat/completions``: OpenAI's fields plus our extensions.

Strict types (a string where a number belongs is a 400, not a guess); fields OpenAI
defines that we do not use (``frequency_penalty``, ``seed``, ``tools`` ...) are ignored,
so any OpenAI client or front end can send its usual body.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
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
                        "unsupported_content",
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
    n: int | None = Field(None, ge=1, le=1, description="Only one choice is generated.")
    user: str | None = Field(None, min_length=1, max_length=256)
    metadata: dict[str, str] | None = None
    safety_level: SafetyLevel | None = None
