"""Expectations: checking what the last turn of a case produced."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.corpus import DEFAULT_MIN_SIMILARITY, Expectation, _as_list, shorten
from evals.records import ExpectationResult
from tools.models.embeddings import get_embeddings


@dataclass
class Outcome:
    """What the last turn of a case produced, the input of the expectations."""

    reply: str
    concept: str | None
    blocked: bool
    refusal: bool
    sources: list[dict[str, Any]]
    prompt_tokens: int
    latency_ms: float
    summary: str = ""
    """The running summary of the thread after the last turn."""


Similarity = Callable[[str, str], float]


def embedding_similarity(a: str, b: str) -> float:
    """Cosine similarity of two texts with the local embedding model (all-MiniLM-L6-v2)."""
    va, vb = get_embeddings().embed_documents([a, b])
    norm = math.sqrt(sum(x * x for x in va)) * math.sqrt(sum(x * x for x in vb))
    return sum(x * y for x, y in zip(va, vb, strict=True)) / norm if norm else 0.0


_FENCED_JSON = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_json_reply(reply: str) -> Any:
    """The JSON value of a reply: the whole text, else its first fenced code block.

    Raises:
        ValueError: Neither is valid JSON.
    """
    try:
        return json.loads(reply)
    except json.JSONDecodeError:
        pass
    for block in _FENCED_JSON.findall(reply):
        try:
            return json.loads(block)
        except json.JSONDecodeError:
            continue
    raise ValueError("the reply is not JSON (nor does it hold a ```json block)")


def evaluate(
    expectation: Expectation, outcome: Outcome, similarity: Similarity = embedding_similarity
) -> ExpectationResult:
    """Check one expectation against what the last turn produced.

    Args:
        expectation: The check.
        outcome: The last turn's reply, concept, safety verdict, sources, tokens, latency.
        similarity: Text similarity for ``similar_to`` (the local embeddings by default).

    Returns:
        The result with a ``detail`` saying what was seen.
    """
    kind, expected = expectation.kind, expectation.expected
    passed, detail = _check(kind, expected, expectation, outcome, similarity)
    return ExpectationResult(
        kind=kind, expected=expected, passed=passed, weight=expectation.weight, detail=detail
    )


def _check(
    kind: str, expected: Any, exp: Expectation, out: Outcome, similarity: Similarity
) -> tuple[bool, str]:
    reply = out.reply
    lowered = reply.casefold()
    if kind == "concept":
        return out.concept == expected, f"routed to {out.concept or 'no concept'}"
    if kind == "blocked":
        return out.blocked == expected, "blocked" if out.blocked else "allowed"
    if kind == "refusal":
        return out.refusal == expected, "a refusal" if out.refusal else "not a refusal"
    if kind == "contains":
        missing = [w for w in _as_list(expected) if w.casefold() not in lowered]
        return not missing, f"missing: {', '.join(map(repr, missing))}" if missing else "all found"
    if kind == "not_contains":
        found = [w for w in _as_list(expected) if w.casefold() in lowered]
        return not found, f"found: {', '.join(map(repr, found))}" if found else "none found"
    if kind == "regex":
        match = re.search(str(expected), reply)
        return match is not None, f"matched {match.group(0)!r}" if match else "no match"
    if kind in ("json", "json_schema"):
        try:
            value = parse_json_reply(reply)
        except ValueError as exc:
            return False, str(exc)
        if kind == "json":
            same = value == expected
            return same, "equal" if same else f"got {shorten(json.dumps(value))}"
        import jsonschema

        errors = list(jsonschema.validators.validator_for(expected)(expected).iter_errors(value))
        return not errors, "valid" if not errors else shorten(errors[0].message, 160)
    if kind == "sources_include":
        names = {str(s.get("name") or "") for s in out.sources} | {
            Path(str(s.get("source") or "")).name for s in out.sources
        }
        paths = [str(s.get("source") or "") for s in out.sources]
        missing = [
            w
            for w in _as_list(expected)
            if w not in names and not any(p.endswith(w) for p in paths)
        ]
        seen = ", ".join(sorted(n for n in names if n)) or "no sources"
        return not missing, f"sources: {seen}"
    if kind == "max_prompt_tokens":
        return out.prompt_tokens <= expected, f"{out.prompt_tokens} prompt tokens"
    if kind == "max_latency_ms":
        return out.latency_ms <= expected, f"{out.latency_ms:.0f} ms"
    if kind == "similar_to":
        threshold = DEFAULT_MIN_SIMILARITY if exp.min_similarity is None else exp.min_similarity
        score = similarity(reply, str(expected))
        return score >= threshold, f"similarity {score:.3f} (needs {threshold:.2f})"
    raise AssertionError(f"unhandled expectation kind {kind}")


def score_case(results: Sequence[ExpectationResult]) -> tuple[bool, float]:
    """Whether a case passed (every expectation did) and its weighted score."""
    total = sum(r.weight for r in results)
    got = sum(r.weight for r in results if r.passed)
    return all(r.passed for r in results) and bool(results), (got / total if total else 0.0)
