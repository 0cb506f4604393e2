"""The embedding model on ONNX Runtime against sentence-transformers, on the real weights."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from tools.models import embeddings as emb

TEXTS = [
    "",
    "hi",
    "What fuse does the espresso machine take?",
    # longer than the 256 word pieces the model reads: both must cut at the same place
    "Part AB-1000-A: unit price 12.34 EUR, stock 37, bin R5/S3. " * 30,
    "日本語のテキストも読めますか",
    "Explain how vaccines work, like I'm five.",
    "SELECT * FROM users WHERE id = 1;",
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return emb._model_dir()


@pytest.fixture(scope="module")
def torch_vectors(model_dir: Path) -> np.ndarray:
    model = emb._load_sentence_transformers(model_dir)
    return np.asarray(model.embed_documents(TEXTS))


def test_onnx_vectors_equal_sentence_transformers(
    model_dir: Path, torch_vectors: np.ndarray
) -> None:
    onnx = emb.OnnxEmbeddings.load(model_dir)
    batch = np.asarray(onnx.embed_documents(TEXTS))
    one_by_one = np.asarray([onnx.embed_query(t) for t in TEXTS])
    assert batch.shape == (len(TEXTS), emb.DIMENSIONS)
    # padding to the longest text of a batch must not change a vector
    assert np.abs(batch - one_by_one).max() < 1e-5
    assert np.abs(batch - torch_vectors).max() < 1e-4
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)


def test_a_fresh_export_is_checked_and_shared_by_threads_starting_together(
    model_dir: Path, torch_vectors: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    target = emb.onnx_model_path(model_dir)
    assert tmp_path in target.parents and not target.exists()
    loaded: list[emb.OnnxEmbeddings] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            loaded.append(emb.OnnxEmbeddings.load(model_dir))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(loaded) == 2
    assert [p.name for p in target.parent.iterdir() if p.suffix != ".lock"] == [target.name]
    vectors = np.asarray(loaded[1].embed_documents(TEXTS))
    assert np.abs(vectors - torch_vectors).max() < 1e-4


def test_without_onnx_runtime_the_model_runs_on_sentence_transformers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unavailable(model_dir: Path) -> emb.OnnxEmbeddings:
        raise emb.EmbeddingModelError("onnxruntime is not installed (test)")

    monkeypatch.setattr(emb.OnnxEmbeddings, "load", staticmethod(unavailable))
    with caplog.at_level(logging.WARNING, logger="assistant.embeddings"):
        model = emb._load_embeddings()
    assert not isinstance(model, emb.OnnxEmbeddings)
    assert "onnxruntime is not installed" in caplog.text
    assert len(model.embed_query("hi")) == emb.DIMENSIONS
