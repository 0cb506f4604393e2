"""The assistant graph: ``from graph import build_graph``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graph.graph import build_graph

__all__ = ["build_graph"]


def __getattr__(name: str) -> Any:
    # Lazy, so `graph.settings` can be imported without loading the whole pipeline.
    if name == "build_graph":
        from graph.graph import build_graph

        return build_graph
    raise AttributeError(name)
