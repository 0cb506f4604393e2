"""model.lora_path: the llama.cpp model gets the adapter, and one model per adapter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from graph.settings import Settings, SettingsError, load_settings
from tools.models import LlamaCppChatModel, ModelLoadError, get_chat_model


def _settings(tmp_path: Path, lora: Path | None) -> Settings:
    gguf = tmp_path / "base.gguf"
    gguf.write_bytes(b"GGUF")
    return load_settings(
        model={"backend": "llamacpp", "gguf_path": str(gguf), "lora_path": lora},
        data_dir=tmp_path / "data",
    )


def test_the_setting_reaches_the_model_and_each_adapter_gets_its_own_model(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    plain = get_chat_model(_settings(tmp_path, None))
    with_a = get_chat_model(_settings(tmp_path, a))
    with_b = get_chat_model(_settings(tmp_path, b))
    assert isinstance(with_a, LlamaCppChatModel) and isinstance(plain, LlamaCppChatModel)
    assert (plain.lora_path, with_a.lora_path) == (None, str(a))
    # Separate instances: separate prompt-state caches, so no state crosses adapters.
    assert len({id(plain), id(with_a), id(with_b)}) == 3
    assert get_chat_model(_settings(tmp_path, a)) is with_a


def test_a_missing_adapter_is_a_load_error_naming_it(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    missing = tmp_path / "nope.gguf"
    model = LlamaCppChatModel(model_path=str(tmp_path / "m.gguf"), lora_path=str(missing))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelLoadError, match=re.escape(f"LoRA adapter file not found: {missing}")):
        _ = model.llama


def test_the_setting_is_a_path_or_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(model={"lora_path": None}).model.lora_path is None
    assert load_settings(model={"lora_path": "  "}).model.lora_path is None
    monkeypatch.setenv("ASSISTANT_MODEL__LORA_PATH", "")
    assert load_settings().model.lora_path is None
    monkeypatch.setenv("ASSISTANT_MODEL__LORA_PATH", "/x/a.gguf")
    assert load_settings().model.lora_path == Path("/x/a.gguf")
    with pytest.raises(SettingsError, match=r"model\.lora_path"):
        load_settings(model={"lora_path": ["x"]})


def test_an_adapter_that_is_not_one_is_a_load_error_that_says_why(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from tools.models.files import smollm2_path

    base = smollm2_path()
    # A GGUF, but a whole model rather than a LoRA adapter: llama.cpp rejects it silently.
    model = LlamaCppChatModel(model_path=str(base), lora_path=str(base), n_ctx=256)
    with pytest.raises(
        ModelLoadError,
        match=f"not a LoRA GGUF, or made for another base model than {re.escape(base.name)}",
    ):
        _ = model.llama


def test_an_adapter_or_model_that_is_a_directory_says_so(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    model = LlamaCppChatModel(model_path=str(tmp_path / "m.gguf"), lora_path=str(tmp_path))
    with pytest.raises(ModelLoadError, match="LoRA adapter is a directory, not a file"):
        _ = model.llama
    model = LlamaCppChatModel(model_path=str(tmp_path))
    with pytest.raises(ModelLoadError, match="GGUF model is a directory, not a file"):
        _ = model.llama
