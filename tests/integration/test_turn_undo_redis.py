"""A failed turn leaves its thread as it was on Redis (the deployments' checkpointer)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from graph.settings import Settings
from tests.support.turn_undo import SCENARIOS
from tools.memory import open_checkpointer


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__.removeprefix("check_"))
def test_a_failed_turn_leaves_the_thread_as_it_was_on_redis(
    scenario: Callable[..., None],
    make_settings: Callable[..., Settings],
    redis_url: str,
    tmp_path: Path,
) -> None:
    settings = make_settings(memory={"backend": "redis", "redis_url": redis_url})
    with open_checkpointer(settings) as saver:
        assert saver is not None
        scenario(settings, saver, tmp_path)
