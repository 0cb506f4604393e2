"""Calibrate the routing numbers of prompts/concepts.yaml on its own examples.

Every concept example and every no_concept request is scored by a classifier fitted
without it (10-fold cross-validation, tools.routing.cross_validated); the threshold, the
regularisation and the alias weight that decide the most right are chosen
(tools.routing.calibrate). Prints the numbers, how many examples they decide right per
kind of alias evidence, and the mistakes; --write puts the numbers into the routing
section of the file (comments and the rest untouched).

Usage: python scripts/calibrate_routing.py [--file prompts/concepts.yaml] [--write]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.models.embeddings import get_embeddings
from tools.routing import PROMPTS_DIR, ConceptRouter, calibrate

KEYS = ("threshold", "regularisation", "alias_weight", "lexical_weight")


def write_numbers(path: Path, numbers: dict[str, float]) -> None:
    """Replace the numbers in the file's routing section, keeping everything else."""
    text = path.read_text(encoding="utf-8")
    head, marker, section = text.partition("\nrouting:\n")
    if not marker:
        raise SystemExit(f"{path}: no 'routing:' section to update")
    for key in KEYS:
        section, count = re.subn(
            rf"(?m)^(  {key}: )\S+", rf"\g<1>{numbers[key]:g}", section, count=1
        )
        if count != 1:
            raise SystemExit(f"{path}: routing.{key} not found")
    path.write_text(head + marker + section, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=PROMPTS_DIR / "concepts.yaml")
    parser.add_argument("--write", action="store_true", help="update the file's numbers")
    args = parser.parse_args()
    router = ConceptRouter.from_file(args.file, get_embeddings())
    found = calibrate(router)
    numbers = {key: getattr(found.params, key) for key in KEYS}
    print("  ".join(f"{key}: {value:g}" for key, value in numbers.items()))
    print(f"cross-validated: {found.correct}/{found.total} decided right")
    for tier, (total, right) in sorted(found.per_tier.items()):
        print(f"  {tier:8s} {right}/{total}")
    for text, expected, got in found.mistakes:
        print(f"  expected {expected or 'none'}, got {got or 'none'}: {text[:90]}")
    if args.write:
        write_numbers(args.file, numbers)
        print(f"wrote {args.file}")


if __name__ == "__main__":
    main()
