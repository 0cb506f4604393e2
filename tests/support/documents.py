"""Documents put straight into a collection, for tests of whose documents a turn searches."""

from __future__ import annotations

import uuid
from pathlib import Path

from graph.settings import Settings
from tools.documents.ingest import ingest
from tools.documents.store import DocumentStore

TOWER = "# The Glass Tower\n\nThe Glass Tower of Wexmoor was designed by Ida Frane in 1911.\n"
TOWER_QUESTION = "Who designed the Glass Tower of Wexmoor?"
MILL = "# The Old Mill\n\nThe old mill of Brantham grinds barley every Tuesday.\n"
MILL_QUESTION = "What does the old mill of Brantham grind every Tuesday?"


def put_document(settings: Settings, collection: str, folder: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``folder/<random>/name`` and ingest it into ``collection``.

    Returns:
        The file's absolute path (what the store keeps as the passage's ``source``).
    """
    place = folder / uuid.uuid4().hex
    place.mkdir(parents=True)
    path = (place / name).resolve()
    path.write_text(text, encoding="utf-8")
    report = ingest(DocumentStore(settings, collection), [path])
    assert [Path(f.path).name for f in report.added] == [name], report
    return path
