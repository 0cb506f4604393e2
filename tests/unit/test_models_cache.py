"""The prompt-state cache without a model: prefix choice, LRU by bytes, threads; prefill."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from tools.models import FakeChatModel, MaskingChatModel
from tools.models.base import Prefill, prefill
from tools.models.state_cache import PrefixStateCache, as_tokens, common_prefix


def blob(n: int, fill: int = 0) -> bytearray:
    return bytearray([fill % 256]) * n


def key_bytes(n_tokens: int) -> int:
    return n_tokens * np.dtype(np.int32).itemsize


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([], [1, 2], 0),
        ([1, 2, 3], [], 0),
        ([1, 2, 3], [1, 2, 3], 3),
        ([1, 2, 3], [1, 2, 3, 4], 3),
        ([1, 2, 3, 4], [1, 2], 2),
        ([1, 2, 3], [1, 9, 3], 1),
        ([9, 2, 3], [1, 2, 3], 0),
        (list(range(5000)), [*range(4999), -1], 4999),
    ],
)
def test_common_prefix(a: list[int], b: list[int], expected: int) -> None:
    assert common_prefix(a, as_tokens(b)) == expected
    assert common_prefix(as_tokens(b), as_tokens(a)) == expected


def test_keys_are_frozen_copies() -> None:
    source = np.array([1, 2, 3], dtype=np.int64)
    key = as_tokens(source)
    source[0] = 99
    assert key.tolist() == [1, 2, 3] and key.dtype == np.int32
    with pytest.raises(ValueError):
        key[0] = 5


def test_the_longest_prefix_wins_whatever_the_insertion_order() -> None:
    system = list(range(100, 130))
    families = {
        "chat": [*system, 1, 2, 3, 4, 5, 6],
        "judge": [7, 7, 7, 7, 8, 8],
        "summary": [*system[:10], 50, 51, 52],
    }
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        cache = PrefixStateCache(10_000)
        names = list(families)
        for i in order:
            assert cache.store(families[names[i]], blob(10, i))
        chat = cache.longest_prefix([*system, 1, 2, 3, 99])
        assert chat is not None and chat.prefix == len(system) + 3
        assert chat.state.tokens.tolist() == families["chat"]
        judge = cache.longest_prefix([7, 7, 7, 7, 9])
        assert judge is not None and judge.prefix == 4
        assert judge.state.tokens.tolist() == families["judge"]
        summary = cache.longest_prefix([*system[:10], 50, 51, 52, 53])
        assert summary is not None and summary.prefix == 13
        assert cache.longest_prefix([1, 2, 3]) is None
        assert cache.longest_prefix([]) is None


def test_a_tie_goes_to_the_smaller_state() -> None:
    cache = PrefixStateCache(10_000)
    cache.store([1, 2, 3, 4, 5], blob(500))
    cache.store([1, 2, 3, 9], blob(50))
    match = cache.longest_prefix([1, 2, 3, 7])
    assert match is not None and match.prefix == 3
    assert match.state.tokens.tolist() == [1, 2, 3, 9]


def test_a_prefix_of_a_kept_state_is_not_stored_again() -> None:
    cache = PrefixStateCache(10_000)
    assert cache.store([1, 2, 3, 4], blob(100))
    assert not cache.store([1, 2, 3], blob(100))
    assert not cache.store([1, 2, 3, 4], blob(100))
    assert len(cache) == 1 and cache.covers([1, 2]) and not cache.covers([1, 2, 5])


def test_a_longer_state_supersedes_its_prefixes_only() -> None:
    cache = PrefixStateCache(10_000)
    cache.store([1, 2], blob(10))
    cache.store([1, 2, 3], blob(10))
    cache.store([1, 5], blob(10))
    cache.store([1, 2, 3, 4, 5], blob(10))
    kept = sorted(tuple(s.tokens.tolist()) for s in cache.entries())
    assert kept == [(1, 2, 3, 4, 5), (1, 5)]
    assert cache.nbytes == 20 + key_bytes(7)


def test_least_recently_used_states_go_first_when_bytes_run_out() -> None:
    entry = 100 + key_bytes(2)
    cache = PrefixStateCache(3 * entry)
    for first in (1, 2, 3):
        cache.store([first, 0], blob(100))
    assert cache.longest_prefix([1, 0, 0]) is not None  # 1 is now the most recent
    cache.store([4, 0], blob(100))
    assert sorted(s.tokens[0] for s in cache.entries()) == [1, 3, 4]
    assert cache.nbytes == 3 * entry
    # One big state pushes out as many as it needs, oldest first.
    cache.store([5, 0], blob(2 * entry - key_bytes(2)))
    assert [s.tokens[0] for s in cache.entries()] == [4, 5]
    assert cache.nbytes <= cache.capacity_bytes


def test_a_state_larger_than_the_capacity_is_refused_without_evicting() -> None:
    cache = PrefixStateCache(1000)
    cache.store([1], blob(500))
    assert not cache.store([2], blob(1000))
    assert [s.tokens.tolist() for s in cache.entries()] == [[1]]
    off = PrefixStateCache(0)
    assert not off.store([1], blob(1))
    assert len(off) == 0 and off.longest_prefix([1]) is None
    with pytest.raises(ValueError):
        PrefixStateCache(-1)


def test_discard_and_clear() -> None:
    cache = PrefixStateCache(10_000)
    cache.store([1, 2], blob(10))
    cache.store([3, 4], blob(10))
    match = cache.longest_prefix([1, 2])
    assert match is not None
    cache.discard(match.state)
    cache.discard(match.state)  # already gone: no error
    assert [s.tokens.tolist() for s in cache.entries()] == [[3, 4]]
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_the_byte_count_stays_exact_under_concurrent_use() -> None:
    cache = PrefixStateCache(40 * (64 + key_bytes(12)))
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(400):
                tokens = [rng.randrange(4) for _ in range(rng.randrange(1, 12))]
                if rng.random() < 0.5:
                    cache.store(tokens, blob(64, seed))
                else:
                    match = cache.longest_prefix(tokens)
                    if match is not None:
                        assert common_prefix(match.state.tokens, as_tokens(tokens)) == match.prefix
                        if rng.random() < 0.1:
                            cache.discard(match.state)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    entries = cache.entries()
    assert cache.nbytes == sum(s.nbytes for s in entries) <= cache.capacity_bytes
    keys = [tuple(s.tokens.tolist()) for s in entries]
    for a in keys:  # no entry is a prefix of another
        assert not any(b != a and b[: len(a)] == a for b in keys)


PREFIX: list[BaseMessage] = [SystemMessage("Be brief."), HumanMessage("hi"), AIMessage("hello")]


def test_prefill_is_a_no_op_on_models_without_prompt_state() -> None:
    fake = FakeChatModel()
    assert isinstance(fake, Prefill)
    assert prefill(fake, PREFIX) == 0
    assert fake.prefills == [PREFIX] and fake.calls == []
    plain = GenericFakeChatModel(messages=iter([AIMessage("x")]))
    assert prefill(plain, PREFIX) == 0


class UpperMasker:
    """A stream masker that upper-cases everything (the wrapper only passes it along)."""

    def __init__(self) -> None:
        self.masked: list[str] = []

    def feed(self, piece: str) -> str:
        return piece.upper()

    def finish(self) -> str:
        return ""


def test_the_masking_wrapper_prefills_its_inner_model() -> None:
    inner = FakeChatModel()
    masked = MaskingChatModel(inner=inner, masker=UpperMasker)
    assert prefill(masked, PREFIX) == 0
    assert inner.prefills == [PREFIX]
