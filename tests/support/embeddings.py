"""Cheap, deterministic embeddings for unit tests: words hashed into 384 dimensions.

Texts that share words are close (cosine similarity grows with the shared words), which
is enough to test recall by meaning without loading all-MiniLM-L6-v2.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from graph.settings import Settings

DIMS = 384
_STOP = {"the", "a", "an", "is", "my", "i", "me", "you", "your", "to", "of", "and", "what", "was"}


def word_vectors(texts: Sequence[str]) -> list[list[float]]:
    """Bag-of-words vectors (stop words left out), normalised."""
    vectors = []
    for text in texts:
        vector = [0.0] * DIMS
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            if word in _STOP:
                continue
            slot = int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMS
            vector[slot] += 1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        vectors.append([x / norm for x in vector])
    return vectors


def word_store(settings: Settings | None = None) -> BaseStore | None:
    """An in-process store indexed with :func:`word_vectors` (None if memory is off)."""
    if settings is not None and not settings.long_term.enabled:
        return None
    return InMemoryStore(index={"embed": word_vectors, "dims": DIMS, "fields": ["text"]})
