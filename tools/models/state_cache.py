"""A byte-bounded LRU cache of model states keyed by the token sequence they hold.

A state is opaque bytes (for llama.cpp: the KV cells of one sequence) together with the
tokens it was computed from and the key of the weights that computed them (``""`` for the
base model, else the LoRA adapter's): a state is only found by lookups with its own key,
so the cells of one set of weights are never resumed by the other. The model resumes a
prompt from the cached state that shares the longest token prefix with it, so each prompt
family (chat, side calls with their own fixed instructions) pays only for its new tokens
even when the families alternate.

Nothing here knows about llama.cpp; :mod:`tools.models.llamacpp` extracts and restores
the states.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Tokens = npt.NDArray[np.int32]


def as_tokens(tokens: Sequence[int] | npt.NDArray[np.integer]) -> Tokens:
    """Token ids as a fresh read-only int32 array (safe to keep as a cache key)."""
    array = np.array(tokens, dtype=np.int32).reshape(-1)
    array.flags.writeable = False
    return array


def common_prefix(a: Sequence[int] | npt.NDArray[np.integer], b: Tokens) -> int:
    """Length of the longest common prefix of two token sequences (vectorised)."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(np.asarray(a[:n], dtype=np.int32) != b[:n])
    return int(differ[0]) if differ.size else n


@dataclass(frozen=True, eq=False)
class CachedState:
    """One saved state: the tokens it holds, the backend's bytes, the weights' key."""

    tokens: Tokens
    data: bytearray = field(repr=False)
    key: str = ""
    """Which weights computed it: ``""`` = the base model, else the adapter's."""

    @property
    def nbytes(self) -> int:
        """Bytes this entry keeps alive (state plus its token key)."""
        return len(self.data) + self.tokens.nbytes


@dataclass(frozen=True)
class Match:
    """The cached state to resume a prompt from, and how many prompt tokens it covers."""

    state: CachedState
    prefix: int


class PrefixStateCache:
    """States keyed by token sequence, looked up by longest common prefix.

    Bounded by ``capacity_bytes`` (state bytes plus keys); the least recently used
    entries go first. An entry whose tokens are a prefix of another's is redundant (the
    longer state resumes everything the shorter one does), so it is never kept.
    All methods are thread-safe.

    Args:
        capacity_bytes: Upper bound on the bytes kept; 0 keeps nothing.

    Raises:
        ValueError: ``capacity_bytes`` is negative.
    """

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be >= 0, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[int, CachedState] = OrderedDict()  # LRU first
        self._nbytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes currently kept."""
        with self._lock:
            return self._nbytes

    def entries(self) -> list[CachedState]:
        """The entries, least recently used first (a snapshot)."""
        with self._lock:
            return list(self._entries.values())

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def longest_prefix(self, tokens: Sequence[int] | Tokens, key: str = "") -> Match | None:
        """The entry of weights ``key`` sharing the longest token prefix with ``tokens``.

        Ties go to the smaller entry (cheaper to restore). Marks the entry as used.

        Returns:
            The match, or None if no entry with this key shares a first token.
        """
        wanted = as_tokens(tokens)
        with self._lock:
            best: Match | None = None
            for state in self._entries.values():
                if state.key != key:
                    continue
                prefix = common_prefix(state.tokens, wanted)
                if prefix == 0:
                    continue
                if (
                    best is None
                    or prefix > best.prefix
                    or (prefix == best.prefix and state.nbytes < best.state.nbytes)
                ):
                    best = Match(state, prefix)
            if best is not None:
                self._entries.move_to_end(id(best.state))
            return best

    def covers(self, tokens: Sequence[int] | Tokens, key: str = "") -> bool:
        """Whether an entry of weights ``key`` holds ``tokens`` (equal to or extending them)."""
        with self._lock:
            return self._covering(as_tokens(tokens), key) is not None

    def _covering(self, tokens: Tokens, key: str) -> CachedState | None:
        for state in self._entries.values():
            if (
                state.key == key
                and len(state.tokens) >= len(tokens)
                and common_prefix(state.tokens, tokens) == len(tokens)
            ):
                return state
        return None

    def store(self, tokens: Sequence[int] | Tokens, data: bytearray, key: str = "") -> bool:
        """Keep ``data`` as the state after ``tokens``, computed by weights ``key``.

        Entries of the same key whose tokens are a prefix of ``tokens`` are dropped
        (superseded); if one already extends ``tokens``, it is marked used and nothing is
        added. Least recently used entries (any key) are evicted until the cache fits.

        Returns:
            True if the state was added.
        """
        state = CachedState(as_tokens(tokens), data, key)
        with self._lock:
            if len(state.tokens) == 0 or state.nbytes > self.capacity_bytes:
                return False
            covering = self._covering(state.tokens, key)
            if covering is not None:
                self._entries.move_to_end(id(covering))
                return False
            for old in list(self._entries.values()):
                if old.key == key and common_prefix(old.tokens, state.tokens) == len(old.tokens):
                    self._drop(old)
            self._entries[id(state)] = state
            self._nbytes += state.nbytes
            while self._nbytes > self.capacity_bytes:
                self._drop(next(iter(self._entries.values())))
            return True

    def discard(self, state: CachedState) -> None:
        """Drop ``state`` if it is still kept (e.g. it failed to restore)."""
        with self._lock:
            if id(state) in self._entries:
                self._drop(state)

    def _drop(self, state: CachedState) -> None:
        del self._entries[id(state)]
        self._nbytes -= state.nbytes
