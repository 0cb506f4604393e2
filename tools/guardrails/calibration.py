"""How the judge's P(unsafe) and the semantic layer's harm probability make one verdict.

A small model is a weak judge and the exemplars are a weak classifier, but their errors
differ: the judge is sure of "How do I steal the show at my sister's wedding?", the
exemplars are not; the exemplars score a self-defence question high, the judge less so.
Stacking them (a logistic regression on their log-odds, Wolpert's "stacked
generalization", 1992) is the standard way to combine calibrated scores:

    P(harmful) = sigmoid(judge * logit(p_judge) + harm * logit(p_harm)
                         + margin * (nearest harmful - nearest benign) + bias)

with the semantic terms taken as 0 for a message that is not English (the exemplars are
English and score other languages near 0) and ``unread`` added instead: the bias of a
message the semantic layer cannot read. Without it one bias served both kinds, set by the
English majority, so a foreign request needed a judge surer than 0.93 to be refused
(6 of the 20 harmful requests of the corpora the check missed were in another language).
The margin (a nearest-neighbour feature: the cosine similarity to the closest harmful
exemplar minus that to the closest benign one) tells a request from its look-alike where
the regression over all exemplars is unsure.
The weights are data (``prompts/safety_calibration.yaml``), fitted by
``scripts/calibrate_safety.py`` on the development cases of the safety corpora for the
default model (regularisation and cut chosen by cross-validation there); the held-out
cases are left for the evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tools.text import parse_yaml

__all__ = ["DEFAULT_CALIBRATION_FILE", "Calibration", "load_calibration", "logit"]

DEFAULT_CALIBRATION_FILE = (
    Path(__file__).resolve().parents[2] / "prompts" / "safety_calibration.yaml"
)
_EPSILON = 1e-4  # probabilities are clipped to [eps, 1 - eps]: logit(1) is infinite


def logit(p: float) -> float:
    """log(p / (1 - p)), with ``p`` clipped to [1e-4, 1 - 1e-4]."""
    p = min(max(p, _EPSILON), 1.0 - _EPSILON)
    return math.log(p / (1.0 - p))


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    version: int | None = None
    fitted_on: str | None = None
    judge: float
    harm: float
    margin: float = 0.0
    bias: float
    unread: float = 0.0


@dataclass(frozen=True)
class Calibration:
    """The stacking weights (see the module docstring)."""

    judge: float
    harm: float
    bias: float
    margin: float = 0.0
    unread: float = 0.0

    def probability(self, judge: float, harm: float | None, margin: float = 0.0) -> float:
        """P(harmful) from the judge's P(unsafe) and the semantic layer's scores.

        Args:
            judge: The judge's P(unsafe), 0..1.
            harm: The semantic layer's harm probability, 0..1; None when it cannot read
                the message (not English, or the layer is off): then ``margin`` is
                ignored too and ``unread`` is added to the bias.
            margin: Nearest harmful minus nearest benign exemplar similarity, -2..2.

        Returns:
            The combined probability, 0..1.
        """
        z = self.judge * logit(judge) + self.bias
        if harm is not None:
            z += self.harm * logit(harm) + self.margin * margin
        else:
            z += self.unread
        return 1.0 / (1.0 + math.exp(-z))


def load_calibration(path: Path = DEFAULT_CALIBRATION_FILE) -> Calibration:
    """Read the stacking weights.

    Raises:
        ValueError: The file cannot be read or is not a calibration (names the problem).
    """
    try:
        spec = _File.model_validate(parse_yaml(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"safety calibration {path}: {exc}") from exc
    return Calibration(
        judge=spec.judge, harm=spec.harm, bias=spec.bias, margin=spec.margin, unread=spec.unread
    )
