"""Pictures of the assistant's graph: PNG, Mermaid and ASCII, all drawn offline.

- PNG through ``Graph.draw_png`` (pygraphviz; its wheel bundles Graphviz, so nothing else
  is needed). ``draw_mermaid_png`` is never used: it calls a web API.
- Mermaid text through ``Graph.draw_mermaid`` (no extra package).
- ASCII art through ``Graph.draw_ascii`` (grandalf).

The graph is built on a fake model, so drawing never loads (or even looks for) weights.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args, overload

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langchain_core.runnables.graph import Graph
    from langgraph.graph.state import CompiledStateGraph

    from graph.settings import Settings

Format = Literal["png", "mermaid", "ascii"]
FORMATS: tuple[Format, ...] = get_args(Format)

# The optional package each format needs: (module to import, what to pip install).
_NEEDS: dict[Format, tuple[str, str]] = {
    "png": ("pygraphviz", "pygraphviz"),
    "ascii": ("grandalf", "grandalf"),
}


class PictureError(RuntimeError):
    """A picture cannot be drawn: an unknown format or a missing drawing package."""


class Drawable(Protocol):
    """Anything that can hand out its drawable graph (a compiled LangGraph graph)."""

    def get_graph(self, config: RunnableConfig | None = None) -> Graph:
        """Return the graph's nodes and edges."""
        ...


def check_format(fmt: str) -> Format:
    """Validate a format name.

    Args:
        fmt: ``png``, ``mermaid`` or ``ascii`` (any case).

    Returns:
        The format, lower-cased.

    Raises:
        PictureError: The format is not one of ``FORMATS``.
    """
    name = fmt.strip().lower()
    for known in FORMATS:
        if name == known:
            return known
    raise PictureError(f"unknown picture format {fmt!r}: use {', '.join(FORMATS)}")


def require(fmt: Format) -> None:
    """Make sure the package that draws ``fmt`` can be imported.

    Args:
        fmt: The picture format.

    Raises:
        PictureError: The package is missing or broken; the message says what to install.
    """
    if fmt not in _NEEDS:
        return
    module, package = _NEEDS[fmt]
    try:
        importlib.import_module(module)
    except ImportError as exc:  # missing, or its bundled libraries fail to load
        raise PictureError(
            f"drawing the graph as {fmt} needs {package}: "
            f"`.venv/bin/pip install -c constraints.txt {package}` ({exc})"
        ) from None


def pipeline(settings: Settings | None = None) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Build the assistant graph for drawing, on a fake model.

    Args:
        settings: Settings to build with; None reads them (file, ``.env``, environment).
            Whatever ``model.backend`` says, no model is loaded.

    Returns:
        The compiled graph (the same nodes and edges as the real one).
    """
    from graph import build_graph
    from tools.models import FakeChatModel

    return build_graph(settings, model=FakeChatModel())


@overload
def draw(graph: Drawable, fmt: Literal["png"]) -> bytes: ...
@overload
def draw(graph: Drawable, fmt: Literal["mermaid", "ascii"]) -> str: ...
@overload
def draw(graph: Drawable, fmt: Format) -> bytes | str: ...
def draw(graph: Drawable, fmt: Format) -> bytes | str:
    """Draw a compiled graph.

    Args:
        graph: A compiled graph (anything with ``get_graph()``).
        fmt: ``png`` (PNG bytes), ``mermaid`` (Mermaid source) or ``ascii`` (text).

    Returns:
        The picture: bytes for PNG, text otherwise.

    Raises:
        PictureError: Unknown format, or the package that draws it is missing.
    """
    fmt = check_format(fmt)
    require(fmt)
    drawable = graph.get_graph()
    if fmt == "png":
        png = drawable.draw_png(None)
        if not png:
            raise PictureError("pygraphviz returned no PNG data")
        return png
    if fmt == "mermaid":
        return drawable.draw_mermaid()
    return drawable.draw_ascii()


def write_picture(
    path: str | Path,
    fmt: Format,
    *,
    graph: Drawable | None = None,
    settings: Settings | None = None,
) -> Path:
    """Draw the graph and write it to a file in an existing folder.

    Args:
        path: Where to write the picture.
        fmt: ``png``, ``mermaid`` or ``ascii``.
        graph: The graph to draw; None draws the assistant's (see ``pipeline``).
        settings: Settings to build the assistant's graph with when ``graph`` is None.

    Returns:
        The path written.

    Raises:
        PictureError: Unknown format, the package that draws it is missing, or the
            file's folder does not exist (a typo must not create folders silently).
        OSError: The file cannot be written.
    """
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "no such folder"
        raise PictureError(f"cannot write {target}: {what}: {folder}")
    fmt = check_format(fmt)
    require(fmt)  # before building the graph: fail fast on a missing package
    picture = draw(graph if graph is not None else pipeline(settings), fmt)
    if isinstance(picture, bytes):
        target.write_bytes(picture)
    else:
        target.write_text(picture if picture.endswith("\n") else picture + "\n", encoding="utf-8")
    return target
