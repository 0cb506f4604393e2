"""Module-level graph for ``langgraph.json`` (the dev server brings its own persistence)."""

from graph.graph import build_graph

graph = build_graph()
