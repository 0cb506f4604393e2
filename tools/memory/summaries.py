"""The running summary: what the summariser is asked, and whether its answer can be used.

A small model asked to summarise sometimes answers with nothing, with a placeholder it saw
in the request ("(empty)"), with the request itself, or with a fluent summary that has
lost the user's name. :func:`summary_problem` catches each of these; the summarise node
then asks once more, naming what was missing, and as a last resort keeps the user's own
sentences (:func:`extractive_summary`), so a name or a number said in a folded turn is
never lost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tools.memory.facts import key_terms, missing_terms, self_statements
from tools.prompting import Turn

# What a model writes when it means "nothing" (or copies a placeholder).
_PLACEHOLDER = re.compile(
    r"^[\s(\[*_\"']*(?:empty|none|n/?a|nothing|no summary|no facts|null|tbd|\.\.\.|…)?"
    r"[\s)\]*_\"'.]*$",
    re.IGNORECASE,
)
# Headings of our own request; a reply that contains them copied the request.
_REQUEST_HEADINGS = ("Summary so far:", "New lines of the conversation:", "Conversation:")
_TRANSCRIPT_LINE = re.compile(r"^\s*(?:User|Assistant)\s*:", re.MULTILINE)
_LEAD_IN = re.compile(r"^\s*(?:\*\*)?(?:updated |new )?summary(?:\*\*)?\s*:\s*", re.IGNORECASE)


def transcript(turns: Sequence[Turn]) -> str:
    """The turns as plain "User:/Assistant:" lines (only ever shown to the summariser)."""
    names = {"human": "User", "ai": "Assistant"}
    return "\n".join(f"{names[m.type]}: {m.text}" for turn in turns for m in turn.messages)


def summary_request(previous: str, turns: Sequence[Turn], missing: Sequence[str] = ()) -> str:
    """The user message that asks for the updated summary.

    There is no placeholder for "no summary yet": a model copies placeholders back.

    Args:
        previous: The summary so far ("" before the first).
        turns: The turns to fold in, oldest first.
        missing: Names and numbers an earlier attempt left out (asked for explicitly).
    """
    lines = transcript(turns)
    if previous:
        request = (
            f"Summary so far:\n{previous}\n\nNew lines of the conversation:\n{lines}\n\n"
            "Write the updated summary."
        )
    else:
        request = f"Conversation:\n{lines}\n\nWrite the summary."
    if missing:
        request += " It must mention: " + ", ".join(missing) + "."
    return request


def user_facts(turns: Sequence[Turn]) -> list[str]:
    """What the user said about themselves in ``turns``, sentence by sentence, in order."""
    return [
        s
        for turn in turns
        for m in turn.messages
        if m.type == "human"
        for s in self_statements(m.text)
    ]


def required_terms(turns: Sequence[Turn]) -> set[str]:
    """Names and numbers the user stated about themselves in ``turns``: a summary keeps them."""
    return {term for fact in user_facts(turns) for term in key_terms(fact)}


def tidy(text: str, *, truncated: bool = False) -> str:
    """The summariser's reply without a "Summary:" lead-in.

    When it ran out of tokens (``truncated``), it is cut to its last whole sentence.
    """
    text = _LEAD_IN.sub("", text.strip()).strip()
    if truncated and not text.endswith((".", "!", "?")):
        end = max(text.rfind(". "), text.rfind(".\n"))
        text = text[: end + 1] if end > 0 else text
    return text.strip()


def summary_problem(candidate: str, *, turns: Sequence[Turn], request: str) -> str | None:
    """Why ``candidate`` cannot be the new summary, or None if it can.

    Checks, in order: not empty, not a placeholder, not a copy of the request (its
    headings or "User:"/"Assistant:" lines, or as long as the lines it summarises), and
    keeps every name and number the user stated about themselves in ``turns``.
    """
    if not candidate.strip():
        return "it is empty"
    if _PLACEHOLDER.match(candidate):
        return f"it is a placeholder ({candidate.strip()[:20]!r})"
    if any(h in candidate for h in _REQUEST_HEADINGS) or _TRANSCRIPT_LINE.search(candidate):
        return "it copies the request"
    if candidate.strip() in request and len(candidate.strip()) > 0.8 * len(transcript(turns)):
        return "it copies the request"
    missing = missing_terms(required_terms(turns), candidate)
    if missing:
        return "it leaves out " + ", ".join(missing)
    return None


def extractive_summary(previous: str, turns: Sequence[Turn]) -> str:
    """A summary made without the model: the summary so far and the user's own statements.

    Used when the summariser's answers fail :func:`summary_problem`; it keeps every name
    and number the user stated about themselves, in their words.
    """
    facts = [f for f in user_facts(turns) if f not in previous]
    said = " ".join(f'The user said: "{f}"' for f in facts)
    return "\n".join(part for part in (previous.strip(), said) if part)
