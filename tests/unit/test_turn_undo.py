"""A failed turn leaves its thread as it was, on the in-memory saver and on SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from graph.settings import Settings
from tests.support.turn_undo import SCENARIOS
from tools.memory import open_checkpointer


@pytest.fixture(params=["memory", "sqlite"])
def saver(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[BaseCheckpointSaver[Any]]:
    if request.param == "memory":
        yield InMemorySaver()
        return
    settings = make_settings(memory={"backend": "sqlite", "sqlite_path": tmp_path / "t.sqlite"})
    with open_checkpointer(settings) as sqlite:
        assert sqlite is not None
        yield sqlite


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("check_"))
def test_a_failed_turn_leaves_the_thread_as_it_was(
    scenario: Callable[..., None],
    saver: BaseCheckpointSaver[Any],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    scenario(make_settings(), saver, tmp_path)
