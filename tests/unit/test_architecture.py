"""The dependency rule (docs/architecture.md), checked with import-linter's contracts.

The contracts live in pyproject.toml ([tool.importlinter]); these tests run them on the
real tree, and once on a copy with a deliberate node-to-node import, to show they bite.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("graph", "nodes", "tools", "apps", "evals")
LINT = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(no_cache=True, no_logo=True))"
)


def lint(where: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the tree at ``where`` (its own pyproject.toml, its own packages)."""
    return subprocess.run(
        [sys.executable, "-c", LINT],
        cwd=where,
        # The tree under test comes first on sys.path, ahead of the editable install.
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_tree(target: Path) -> Path:
    """The project's Python packages and pyproject.toml, copied to ``target``."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_the_contracts_hold() -> None:
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "source", "contract"),
    [
        ("nodes/zz_probe.py", "from nodes.generate import make_generate\n", "No node imports"),
        ("tools/zz_probe.py", "from graph.deps import Deps\n", "Dependencies point one way"),
        ("graph/settings_probe.py", "import tools.routing\n", "Dependencies point one way"),
        ("tools/routing_probe.py", "import nodes.refuse\n", "Dependencies point one way"),
    ],
    ids=["node-imports-node", "tool-imports-deps", "contract-imports-tool", "tool-imports-node"],
)
def test_a_wrong_way_import_breaks_a_contract(
    tmp_path: Path, module: str, source: str, contract: str
) -> None:
    tree = copy_tree(tmp_path)
    if module.startswith("graph/"):
        # A module of the contracts layer: make graph.settings itself import a tool.
        settings = tree / "graph" / "settings.py"
        settings.write_text(settings.read_text() + "\n" + source)
    else:
        (tree / module).write_text(source)
    done = lint(tree)
    assert done.returncode != 0, done.stdout
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout
