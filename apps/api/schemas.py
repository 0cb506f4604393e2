"""The request body of ``POST /v1/chat/completions``: OpenAI's fields plus our extensions.

Every field OpenAI's chat-completions reference defines (the ``openai`` package's
``CompletionCreateParams`` and the message, tool and format types it names) is checked
against the type and bounds the reference gives it, used or not: a wrong type is a 400
naming the field (``"seed": 1.5``, ``"tools": 5``, ``"stop": 7``), never taken silently.
Types are strict (a string where a number belongs is a 400, not a guess). Fields that change
nothing we promise (``frequency_penalty``, ``seed``, ``tools`` the model may leave unused, a
message's ``name`` ...) are then ignored, so any OpenAI client or front end can send its
usual body. A field that asks for what this assistant cannot give (stop sequences, log
probabilities, a JSON reply, a forced tool call, more than one choice, audio, token
biases, a web search) is a 400 naming it (``unsupported_parameter`` or
``unsupported_value``, as OpenAI answers a model that lacks a feature): ignored, the client
would take a reply that is not what it asked for as if it were. Sent with the value that
asks for nothing (``stop: []``, ``logprobs: false``, ``response_format: {"type": "text"}``,
``tool_choice: "auto"``, ``n: 1``, ``logit_bias: {}``), it passes. Fields OpenAI does not
define are ignored (clients send their vendors' extras), also inside the nested objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
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


class CacheBreakpoint(_Body):
    """OpenAI's ``prompt_cache_breakpoint`` on a content part (ignored)."""

    mode: Literal["explicit"]
    ttl: Literal["30m", "12h"] | None = None


class ContentPart(_Body):
    """One part of a message's content; only text parts are understood."""

    type: Literal["text"]
    text: str
    prompt_cache_breakpoint: CacheBreakpoint | None = None


class RefusalPart(_Body):
    """An earlier assistant message's refusal as a content part: taken as its words.

    OpenAI's ``ChatCompletionContentPartRefusalParam``; allowed in assistant messages only.
    """

    type: Literal["refusal"]
    refusal: str


def _part_kind(part: object) -> str | None:
    kind = part.get("type") if isinstance(part, dict) else getattr(part, "type", None)
    return f"{kind} part" if kind in ("text", "refusal") else None


# Tagged by "text part", not "text": pydantic puts the tag in an error's location, and
# "text" is also the part's field, so a wrong field would be reported at the wrong place.
AssistantPart = Annotated[
    Annotated[ContentPart, Tag("text part")] | Annotated[RefusalPart, Tag("refusal part")],
    Discriminator(_part_kind),
]


_NAME = r"^[A-Za-z0-9_-]{1,64}$"
"""OpenAI's rule for a function's or a response format's name."""

FunctionName = Annotated[str, Field(pattern=_NAME)]


class CalledFunction(_Body):
    """A function an earlier assistant message called (ignored: no tool runs here)."""

    name: str
    arguments: str


class CalledCustom(_Body):
    """A custom tool an earlier assistant message called (ignored)."""

    name: str
    input: str


class FunctionToolCall(_Body):
    """One of an earlier assistant message's ``tool_calls``."""

    id: str
    type: Literal["function"]
    function: CalledFunction


class CustomToolCall(_Body):
    """One of an earlier assistant message's ``tool_calls`` (a custom tool)."""

    id: str
    type: Literal["custom"]
    custom: CalledCustom


ToolCall = Annotated[FunctionToolCall | CustomToolCall, Field(discriminator="type")]


class AudioRef(_Body):
    """An earlier assistant message's audio reply, by id (ignored)."""

    id: str


class ChatMessage(_Body):
    """One message of the conversation the client sends."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[AssistantPart] | None = None
    # OpenAI's other message fields: checked, then ignored (a tool or function message,
    # the one that would use tool_call_id, is refused by role).
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: CalledFunction | None = None
    audio: AudioRef | None = None
    tool_call_id: str | None = None

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
    def _text_parts_only(cls, content: object, info: ValidationInfo) -> object:
        # Checked before the union is tried: otherwise an image part is reported as
        # "Input should be a valid string" (the union's first member). A refusal part is
        # OpenAI's for an earlier assistant message only (role is checked before content).
        if isinstance(content, list):
            assistant = info.data.get("role") == "assistant"
            allowed = ("text", "refusal") if assistant else ("text",)
            for at, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if isinstance(kind, str) and kind not in allowed:
                    raise PydanticCustomError(
                        "unsupported_value",
                        "only text content parts are supported{also} (part {at} is {kind})",
                        {
                            "at": at,
                            "kind": repr(kind[:40]),
                            "also": " (and refusal parts in an assistant message)"
                            if assistant
                            else "",
                        },
                    )
        return content

    @property
    def text(self) -> str:
        """The message's text (text parts joined with newlines)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(
            part.text if isinstance(part, ContentPart) else part.refusal for part in self.content
        )


class StreamOptions(_Body):
    """OpenAI's ``stream_options``: a last chunk with the usage when asked."""

    include_usage: bool = False
    include_obfuscation: bool | None = None
    """Padding against length side channels; the stream has none (ignored)."""


class FunctionDefinition(_Body):
    """A function the model may call: ``tools[].function`` and ``functions[]``."""

    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(_Body):
    """A function tool in ``tools``."""

    type: Literal["function"]
    function: FunctionDefinition


class TextFormat(_Body):
    """A custom tool's free-text input."""

    type: Literal["text"]


class Grammar(_Body):
    """The grammar of a custom tool's input."""

    definition: str
    syntax: Literal["lark", "regex"]


class GrammarFormat(_Body):
    """A custom tool's input in a grammar."""

    type: Literal["grammar"]
    grammar: Grammar


class CustomDefinition(_Body):
    """A custom tool's name, description and input format."""

    name: str
    description: str | None = None
    format: Annotated[TextFormat | GrammarFormat, Field(discriminator="type")] | None = None


class CustomTool(_Body):
    """A custom tool in ``tools``."""

    type: Literal["custom"]
    custom: CustomDefinition


Tool = Annotated[FunctionTool | CustomTool, Field(discriminator="type")]


class AllowedTools(_Body):
    """The tools an ``allowed_tools`` choice allows, and whether one must be called."""

    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]]


class AllowedToolsChoice(_Body):
    """``tool_choice`` limiting the tools the model may call."""

    type: Literal["allowed_tools"]
    allowed_tools: AllowedTools


class Named(_Body):
    """A tool or function by name."""

    name: str


class FunctionChoice(_Body):
    """``tool_choice`` forcing a call of one function."""

    type: Literal["function"]
    function: Named


class CustomChoice(_Body):
    """``tool_choice`` forcing a call of one custom tool."""

    type: Literal["custom"]
    custom: Named


ToolChoice = (
    Literal["none", "auto", "required"]
    | Annotated[AllowedToolsChoice | FunctionChoice | CustomChoice, Field(discriminator="type")]
)


class TextResponse(_Body):
    """``response_format`` asking for text, the default."""

    type: Literal["text"]


class JsonObjectResponse(_Body):
    """``response_format`` asking for a JSON object."""

    type: Literal["json_object"]


class JsonSchemaSpec(_Body):
    """The schema ``response_format: {"type": "json_schema"}`` asks the reply to follow."""

    name: FunctionName
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class JsonSchemaResponse(_Body):
    """``response_format`` asking for JSON that follows a schema."""

    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[
    TextResponse | JsonObjectResponse | JsonSchemaResponse, Field(discriminator="type")
]


class VoiceId(_Body):
    """A custom voice, by id."""

    id: str


class AudioOutput(_Body):
    """``audio``: the voice and format of a spoken reply."""

    format: Literal["wav", "aac", "mp3", "flac", "opus", "pcm16"]
    voice: str | VoiceId


class Prediction(_Body):
    """``prediction``: text the reply is expected to repeat (a speed-up; ignored)."""

    type: Literal["content"]
    content: str | list[ContentPart]


class CacheOptions(_Body):
    """``prompt_cache_options`` (ignored)."""

    mode: Literal["implicit", "explicit"] | None = None
    ttl: Literal["30m"] | None = None


class Approximate(_Body):
    """Where the user roughly is, for a web search."""

    city: str | None = None
    country: str | None = None
    region: str | None = None
    timezone: str | None = None


class UserLocation(_Body):
    """``web_search_options.user_location``."""

    type: Literal["approximate"]
    approximate: Approximate


class WebSearchOptions(_Body):
    """``web_search_options``: asks for a web search before the reply."""

    search_context_size: Literal["low", "medium", "high"] | None = None
    user_location: UserLocation | None = None


class ModerationMode(_Body):
    """Whether a moderation policy scores or blocks."""

    mode: Literal["score", "block"]


class ModerationPolicy(_Body):
    """``moderation.policy``."""

    input: ModerationMode | None = None
    output: ModerationMode | None = None


class Moderation(_Body):
    """``moderation``: OpenAI's moderation model on the turn (ignored).

    The assistant's own safety check runs on every turn, at the configured or requested
    level.
    """

    model: str
    policy: ModerationPolicy | None = None


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
    # 0 is allowed, as OpenAI allows it: only the likeliest token, i.e. greedy decoding.
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)
    n: int | None = Field(None, description="Only one choice is generated.")
    user: str | None = Field(None, min_length=1, max_length=256)
    metadata: (
        dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None
    ) = Field(None, max_length=16)
    safety_level: SafetyLevel | None = None
    # OpenAI's fields this assistant cannot honour: any value but the one that asks for
    # nothing is refused (see _UNSUPPORTED), once its type is right.
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tool_choice: ToolChoice | None = None
    function_call: Literal["none", "auto"] | Named | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    audio: AudioOutput | None = None
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100)]] | None = None
    web_search_options: WebSearchOptions | None = None
    # OpenAI's fields that change nothing this assistant promises: checked, then ignored.
    tools: list[Tool] | None = Field(None, max_length=128)
    functions: list[FunctionDefinition] | None = Field(None, max_length=128)
    parallel_tool_calls: bool | None = None
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    seed: int | None = None
    store: bool | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    prediction: Prediction | None = None
    prompt_cache_key: str | None = None
    prompt_cache_options: CacheOptions | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = (
        None
    )
    verbosity: Literal["low", "medium", "high"] | None = None
    safety_identifier: str | None = Field(None, max_length=128)
    moderation: Moderation | None = None

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
        "logit_bias",
        "web_search_options",
        mode="after",
    )
    @classmethod
    def _unsupported(cls, value: object, info: ValidationInfo) -> object:
        # After the type check: "stop": 7 is a wrong type, "stop": "\n" a missing feature.
        name = info.field_name or ""
        asks_nothing, why = _UNSUPPORTED[name]
        if value is not None and not asks_nothing(value):
            raise PydanticCustomError(
                "unsupported_parameter", "this assistant does not support it: {why}", {"why": why}
            )
        return None


def _is(*values: object) -> Callable[[object], bool]:
    return lambda value: any(value == v for v in values)


def _no_forced_call(choice: object) -> bool:
    # A choice the model may answer in text: none, auto, or a set of tools it may call.
    if isinstance(choice, AllowedToolsChoice):
        return choice.allowed_tools.mode == "auto"
    return choice in ("auto", "none")


_UNSUPPORTED: dict[str, tuple[Callable[[object], bool], str]] = {
    "stop": (
        _is("", []),
        "the reply ends where the model ends it (max_tokens bounds its length)",
    ),
    "logprobs": (_is(False), "the model's token probabilities are not returned"),
    "top_logprobs": (_is(0), "the model's token probabilities are not returned"),
    "response_format": (
        lambda value: isinstance(value, TextResponse),
        'replies are plain text; only {"type": "text"} is accepted',
    ),
    "tool_choice": (
        _no_forced_call,
        'this assistant calls no tools, so it cannot be made to; only "auto", "none" '
        'or allowed_tools in mode "auto"',
    ),
    "function_call": (
        _is("auto", "none"),
        'this assistant calls no functions, so it cannot be made to; only "auto" or "none"',
    ),
    "modalities": (_is(["text"]), 'replies are text only; only ["text"] is accepted'),
    "audio": (lambda value: False, "replies are text only"),
    "logit_bias": (
        _is({}),
        "token ids name tokens of OpenAI's tokenizers, not this model's, so no bias can be "
        "applied as asked; only {} is accepted",
    ),
    "web_search_options": (lambda value: False, "this assistant does not search the web"),
}
"""Per field: whether a (well-typed) value asks for nothing (it passes), and why any other
is refused."""
