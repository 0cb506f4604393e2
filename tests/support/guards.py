"""Input guards on fake layers: the shipped lexical filter and policy, a semantic layer
that scores every message the same, and a judge on a fake model."""

from __future__ import annotations

from typing import Any

from graph.settings import load_settings
from tools.guardrails import SafetyFilter
from tools.guardrails.guard import InputGuard
from tools.guardrails.judge import Judge
from tools.guardrails.semantic import SemanticScore
from tools.guardrails.taxonomy import Policy, Taxonomy
from tools.models import FakeChatModel


class StubLayer:
    """A semantic layer that gives every text the same score and records what it read."""

    def __init__(self, score: SemanticScore) -> None:
        self.fixed = score
        self.seen: list[str] = []

    def score(self, text: str, *, english: bool | None = None) -> SemanticScore:
        self.seen.append(text)
        return self.fixed


def shipped_policy(taxonomy: Taxonomy) -> Policy:
    """What each level refuses under the shipped settings."""
    return Policy.build(load_settings().safety.refuse.model_dump(), taxonomy)


def stub_guard(
    model: FakeChatModel | None,
    score: SemanticScore,
    *,
    safety: SafetyFilter | None = None,
    **kwargs: Any,
) -> InputGuard:
    """An input guard whose semantic layer scores every message ``score``.

    Args:
        model: The judge's model (None: no judge).
        score: What the semantic layer says of every message.
        safety: The lexical layer (a new :class:`SafetyFilter` unless given).
        **kwargs: Any other field of :class:`InputGuard` (``judge_mode``,
            ``reply_judge``, ``thresholds``...).
    """
    safety = safety or SafetyFilter()
    return InputGuard(
        safety=safety,
        policy=shipped_policy(safety.taxonomy),
        semantic=StubLayer(score),  # type: ignore[arg-type]
        judge=Judge(lambda: model, safety.taxonomy) if model is not None else None,
        **kwargs,
    )
