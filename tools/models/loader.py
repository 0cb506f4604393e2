"""The chat model for some settings: llama.cpp, transformers, an OpenAI-compatible server, a fake.

All backends are LangChain chat models, so LangGraph streams their tokens
(``stream_mode="messages"``) and per-call sampling knobs arrive as keyword arguments
(``temperature``, ``top_p``, ``max_new_tokens``, ``do_sample``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from graph.settings import Settings
from tools.models.base import ModelLoadError
from tools.models.fake import FakeChatModel
from tools.models.files import DEFAULT_MODEL, ModelFileError, prepare_split_model
from tools.models.llamacpp import LlamaCppChatModel
from tools.models.remote import RemoteChatModel


def _llamacpp(settings: Settings) -> LlamaCppChatModel:
    cfg = settings.model

    def default_model() -> Path:
        try:
            return prepare_split_model(settings.cache_dir / "models", DEFAULT_MODEL)
        except ModelFileError as exc:
            raise ModelLoadError(f"default model not ready: {exc}") from exc

    return LlamaCppChatModel(
        model_path=str(cfg.gguf_path) if cfg.gguf_path else None,
        path_resolver=None if cfg.gguf_path else default_model,
        lora_path=str(cfg.lora_path) if cfg.lora_path else None,
        n_ctx=cfg.n_ctx,
        n_threads=cfg.n_threads,
        n_threads_batch=cfg.n_threads_batch,
        n_batch=cfg.n_batch,
        state_cache_mb=cfg.state_cache_mb,
        state_dir=str(settings.cache_dir / "prompt-states"),
        state_files_mb=cfg.state_files_mb,
    )


def _remote(settings: Settings) -> RemoteChatModel:
    cfg = settings.model
    return RemoteChatModel(
        base_url=cfg.base_url,
        api_key=cfg.api_key,
        name=cfg.name,
        timeout=cfg.timeout,
        retries=cfg.retries,
        tokenizer=cfg.tokenizer,
        n_ctx=cfg.n_ctx,
    )


def _model_key(settings: Settings) -> tuple[Any, ...]:
    # Sampling is not part of the key: it arrives with every call (see Deps.sampling).
    # The JSON masks the API key, so two keys would otherwise share one client.
    key = settings.model.api_key.get_secret_value() if settings.model.api_key else None
    return (settings.model.model_dump_json(), key, str(settings.cache_dir))


def _file_key(path: Path) -> str:
    # Path, size and modification time: a file replaced in place is other weights.
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def weights_key(settings: Settings) -> str | None:
    """What identifies the weights a llama.cpp model loads: base GGUF and LoRA adapter.

    For what is worked out once per set of weights and kept on disk (the safety judge's
    canary results). The default model is named by its SHA-256; a file of one's own by
    its path, size and modification time.

    Returns:
        The key, or None for the other backends (a server may change its model at any
        time; the fake has no weights) or a file that is missing.
    """
    cfg = settings.model
    if cfg.backend != "llamacpp":
        return None
    try:
        base = _file_key(cfg.gguf_path) if cfg.gguf_path else f"sha256:{DEFAULT_MODEL.sha256}"
        lora = _file_key(cfg.lora_path) if cfg.lora_path else ""
    except OSError:
        return None
    return f"{base}|{lora}"


_MODELS: dict[tuple[Any, ...], BaseChatModel] = {}
_MODELS_LOCK = threading.Lock()


def _new_model(settings: Settings) -> BaseChatModel:
    backend = settings.model.backend
    if backend == "fake":
        return FakeChatModel(reply=settings.model.fake_reply)
    if backend == "huggingface":
        try:
            from tools.models.huggingface import load_huggingface_chat_model
        except ImportError as exc:
            raise ModelLoadError(
                f"the huggingface backend needs its extra: pip install -e '.[huggingface]' ({exc})"
            ) from exc
        return load_huggingface_chat_model(settings)
    if backend == "openai":
        return _remote(settings)
    return _llamacpp(settings)


def get_chat_model(settings: Settings) -> BaseChatModel:
    """The chat model for these settings, shared by every graph of the process.

    Loading a GGUF takes seconds and gigabytes, so graphs built with the same model
    settings share one instance (the weights load lazily on first use); sampling knobs
    are passed with each call, so they do not need an instance of their own.
    """
    key = _model_key(settings)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = _new_model(settings)
        return _MODELS[key]
