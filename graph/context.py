"""Per-run knobs: the LangGraph runtime context (``context_schema``).

Every field defaults to None, which means "use the value from settings", so one run can
change, say, the safety level without touching anybody else's runs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from graph.settings import SafetyLevel, check_collection


class Context(BaseModel):
    """Per-run overrides of settings (pass as ``context={...}`` to invoke/stream)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    user_id: str | None = Field(
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
