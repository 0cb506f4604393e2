"""Per-run knobs: the LangGraph runtime context (``context_schema``).

Every field defaults to None, which means "use the value from settings", so one run can
change, say, the safety level without touching anybody else's runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from graph.settings import SafetyLevel, check_collection, check_user_name, same_user_name


class Context(BaseModel):
    """Per-run overrides of settings (pass as ``context={...}`` to invoke/stream)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    safety_level: SafetyLevel | None = Field(
        None, description="strict, moderate or relaxed; empty = safety.sensitivity_level."
    )
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Sampling temperature; empty = from settings."
    )
    top_p: float | None = Field(
        None, gt=0.0, le=1.0, description="Nucleus sampling; empty = from settings."
    )
    max_new_tokens: int | None = Field(
        None, ge=1, le=8192, description="Longest reply in tokens; empty = from settings."
    )
    do_sample: bool | None = Field(
        None, description="False = greedy decoding; empty = from settings."
    )
    fuzzy_aliases: bool | None = Field(
        None, description="Match aliases with typos; empty = prompts.fuzzy."
    )
    fuzzy_cutoff: float | None = Field(
        None, ge=0.0, le=1.0, description="Fuzzy match cutoff 0..1; empty = from settings."
    )
    retrieval: bool | None = Field(
        None, description="Look up the user's documents; empty = retrieval.enabled."
    )
    collection: Annotated[str, AfterValidator(check_collection)] | None = Field(
        None,
        description="Document collection to search (3-63 letters, digits, . _ -); empty = "
        "chroma.collection.",
    )
    # Composed (NFC) here too, so a run sent straight to the graph (the dev server, a
    # notebook) with "José" in either form reaches the same memories as the front ends.
    user_id: Annotated[str, AfterValidator(same_user_name)] | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Whose long-term memories this run reads and writes; empty = "
        "long_term.user_id (the login name).",
    )
    remember: bool | None = Field(
        None,
        description="False = keep nothing from this run in long-term memory (recall still "
        "works); empty = long_term.enabled.",
    )
    recall: bool | None = Field(
        None,
        description="False = bring back nothing from long-term memory this run (the HTTP "
        "API's anonymous requests, which share one user_id); empty = long_term.enabled.",
    )
    summarise: bool | None = Field(
        None,
        description="False = fold no old turns into the thread's summary this run (the "
        "HTTP API's stateless requests: their thread is deleted after the turn); empty = "
        "summarise when the history is long.",
    )


SERVER_KEYS = frozenset({"thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map"})
"""Keys a LangGraph server run may carry in its context that are not ours: a run sent with
the older ``config={"configurable": {...}}`` gets that dict as its context, and these
address the thread and checkpoint."""


class UnknownContextKeyError(ValueError):
    """A run's context names a key the Context schema does not have (a typo, most often)."""


class BlankUserNameError(ValueError):
    """A user name that is empty or only whitespace."""


def plain_user_name(name: str) -> str:
    """A user name as every front end takes it (CLI ``--user``, web page, API ``user``).

    Blanks around it are dropped, so " ada " is ada everywhere: one person, one set of
    threads and memories. Then one rule for every front end
    (:func:`graph.settings.check_user_name`): letters, digits, spaces and ``_ . @ + -``, so
    no invisible character makes a second "root" and no ``:`` names a bot's user
    (``telegram:<id>``, reached only through the bots).

    Returns:
        The name, stripped.

    Raises:
        BlankUserNameError: The name is blank (empty or only whitespace).
        ValueError: The name breaks the rule; the message says what a name may hold.
    """
    name = name.strip()
    if not name:
        raise BlankUserNameError("a user name is not blank")
    return check_user_name(name)


def check_context_keys(values: Mapping[str, Any]) -> None:
    """Refuse a run's context (as sent, a dict) that names a key ``Context`` does not have.

    The LangGraph server drops such keys before the graph sees them, so a misspelt
    ``safty_level`` would leave the run at the default level without a word; the CLI and
    the HTTP API refuse them (``Context`` forbids extra keys), and so does this.

    Args:
        values: The context's keys and values; ``SERVER_KEYS`` are allowed.

    Raises:
        UnknownContextKeyError: One or more keys are unknown; the message names each, with
            the field it is closest to, and lists the known ones.
    """
    known = list(Context.model_fields)
    unknown = [str(key) for key in values if key not in Context.model_fields]
    unknown = [key for key in unknown if key not in SERVER_KEYS]
    if not unknown:
        return
    named = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        named.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    raise UnknownContextKeyError(
        f"unknown context key{'s' if len(unknown) > 1 else ''} {', '.join(named)}; "
        f"the context takes: {', '.join(known)}"
    )
