"""Maintained classifiers from PyPI that run offline: prompt injection and jailbreaks.

SecureVector Guardian (``securevector-guardian-model``, Apache-2.0; import name
``svguardian``) is a TF-IDF + logistic-regression model trained from scratch by its
authors and shipped inside the wheel (about 2 MB, pure Python at run time, about 1-2 ms a
message). It labels a text ``prompt_injection``, ``jailbreak``, ``data_exfiltration``,
``pii``, ``social_engineering``, ``harmful_content``, ``model_attack`` or benign, and
scans long texts window by window.

Measured on our sets (README "Safety"): it flags injected instructions in documents and
role-play or "no rules" wrappers in messages, with no false alarm on the benign
look-alikes; it misses plain harmful requests (that is not its job). So the input check
uses it to send wrapped requests to the judge, and ingestion uses it to flag chunks that
give orders.

Only the wheel's bundled model is used: :func:`injection_classifier` never lets the
package download anything (``resolve_runtime(download=False)``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["ClassifierError", "InjectionClassifier", "InjectionVerdict", "injection_classifier"]

# Labels that mean "this text gives orders to the model" (a document) or "this message
# wraps its request to get around the rules" (a user message).
INJECTION_LABELS = frozenset({"prompt_injection", "jailbreak", "model_attack", "data_exfiltration"})


class ClassifierError(RuntimeError):
    """A classifier package or its bundled model is missing."""


@dataclass(frozen=True)
class InjectionVerdict:
    """What the classifier says about one text.

    Attributes:
        flagged: The text is one of :data:`INJECTION_LABELS`.
        label: The classifier's label (``"prompt_injection"``, ...), or None if benign.
        risk: 0-100, the classifier's risk score.

    """

    flagged: bool
    label: str | None
    risk: int


class InjectionClassifier:
    """SecureVector Guardian, loaded once (0.4 s) and shared by threads."""

    def __init__(self) -> None:
        try:
            from svguardian import resolve_runtime
            from svguardian.model.pure_infer import PureGuardian
            from svguardian.serve import analyze
        except ImportError as exc:
            raise ClassifierError(
                "securevector-guardian-model is not installed: "
                "pip install securevector-guardian-model==1.4.0"
            ) from exc
        path = resolve_runtime(download=False)
        try:
            self._model: Any = PureGuardian.load(path)
        except (OSError, ValueError) as exc:
            raise ClassifierError(f"the Guardian model in {path} cannot be loaded: {exc}") from exc
        self._analyze = analyze
        self._lock = threading.Lock()

    def check(self, text: str) -> InjectionVerdict:
        """Classify one text (long ones window by window)."""
        with self._lock:
            result = self._analyze(text, self._model)
        label = result.get("threat_type") if result.get("is_threat") else None
        return InjectionVerdict(label in INJECTION_LABELS, label, int(result.get("risk_score", 0)))


_SHARED: InjectionClassifier | None = None
_SHARED_LOCK = threading.Lock()


def injection_classifier() -> InjectionClassifier:
    """The process's classifier, loaded on first use.

    Raises:
        ClassifierError: The package or its bundled model is missing.

    """
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = InjectionClassifier()
        return _SHARED
