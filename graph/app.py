"""The graph for ``langgraph.json``: a factory the LangGraph server calls for each use.

The server brings its own persistence. It also drops context keys that are not in the
graph's context schema before a run starts (``langgraph_api.stream._filter_context_by_schema``,
logged at debug level only), so a misspelt ``safty_level`` would run at the default level
without a word. The server calls this factory with the run's context as sent, before it
filters it: an unknown key fails the run here, with a message naming it, as the CLI and the
HTTP API refuse it.
"""

from functools import cache
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph_sdk.runtime import ServerRuntime

from graph.context import check_context_keys
from graph.graph import build_graph


@cache
def _compiled() -> CompiledStateGraph[Any, Any, Any, Any]:
    # One graph for every call: building it loads the settings and the model wiring.
    return build_graph()


def graph(runtime: ServerRuntime[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The assistant graph; for a run (not a schema or state read), its context is checked.

    Raises:
        UnknownContextKeyError: The run's context names a key the graph does not take.
    """
    run = runtime.execution_runtime
    if run is not None and isinstance(run.context, dict):
        check_context_keys(run.context)
    return _compiled()
