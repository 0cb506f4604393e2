"""Guardrails: the safety filter (serious harm, profanity, masking) and its data files."""

from tools.guardrails.filter import (
    DEFAULT_MILD_TERMS,
    DEFAULT_PATTERNS_FILE,
    SAFETY_LEVELS,
    MaskResult,
    SafetyFilter,
    SafetyLevel,
    SafetyVerdict,
    validate_level,
)

__all__ = [
    "DEFAULT_MILD_TERMS",
    "DEFAULT_PATTERNS_FILE",
    "SAFETY_LEVELS",
    "MaskResult",
    "SafetyFilter",
    "SafetyLevel",
    "SafetyVerdict",
    "validate_level",
]
