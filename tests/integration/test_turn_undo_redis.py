"""On Redis (the deployments' checkpointer): failed turns are undone, owners are kept."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.turns import turn_config
from graph import build_graph
from graph.settings import Settings
from tests.support.turn_undo import SCENARIOS
from tools.memory import open_checkpointer
from tools.memory.checkpointers import aopen_checkpointer
from tools.models import FakeChatModel


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


def _owner_of_each_checkpoint(history: list[Any]) -> set[Any]:
    return {snapshot.metadata.get("user_id") for snapshot in history}


def test_the_sync_redis_saver_keeps_the_threads_owner(
    make_settings: Callable[..., Settings], redis_url: str, fake_model: FakeChatModel
) -> None:
    # langgraph-checkpoint-redis drops the run config's metadata; the owner lives there.
    settings = make_settings(memory={"backend": "redis", "redis_url": redis_url})
    with open_checkpointer(settings) as saver:
        graph = build_graph(settings, checkpointer=saver, model=fake_model)
        config = turn_config("owned-sync", "ada")
        graph.invoke({"messages": [("user", "Hi")]}, config)
        assert _owner_of_each_checkpoint(list(graph.get_state_history(config))) == {"ada"}


def test_the_async_redis_saver_keeps_the_threads_owner(
    make_settings: Callable[..., Settings], redis_url: str, fake_model: FakeChatModel
) -> None:
    # The dev server's and the API's async path: a saver of its own class.
    settings = make_settings(memory={"backend": "redis", "redis_url": redis_url})

    async def turn() -> set[Any]:
        async with aopen_checkpointer(settings) as saver:
            graph = build_graph(settings, checkpointer=saver, model=fake_model)
            config = turn_config("owned-async", "grace")
            await graph.ainvoke({"messages": [("user", "Hi")]}, config)
            return _owner_of_each_checkpoint([s async for s in graph.aget_state_history(config)])

    assert asyncio.run(turn()) == {"grace"}
