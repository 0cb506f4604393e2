"""The ``huggingface`` backend: a local transformers model directory through LangChain.

Nothing here reaches for the hub: the tokenizer and the weights are loaded from the
directory with ``local_files_only=True`` and handed to ``ChatHuggingFace`` explicitly
(left to itself it would look the tokenizer up by model id).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from graph.settings import Settings
from tools.models.base import ModelLoadError, Prefill

log = logging.getLogger("assistant.llm")

# No hub look-ups and no telemetry from transformers or huggingface_hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from langchain_huggingface import ChatHuggingFace, HuggingFacePipeline  # noqa: E402


def _pipeline_kwargs(kwargs: dict[str, Any], defaults: Settings) -> dict[str, Any]:
    gen = defaults.generation
    do_sample = kwargs.get("do_sample", gen.do_sample)
    params: dict[str, Any] = {
        "max_new_tokens": kwargs.get("max_new_tokens", gen.max_new_tokens),
        "do_sample": do_sample,
        "repetition_penalty": kwargs.get("repeat_penalty", gen.repeat_penalty),
    }
    if do_sample:  # transformers warns about sampling knobs in greedy mode
        params["temperature"] = max(kwargs.get("temperature", gen.temperature), 1e-3)
        params["top_p"] = kwargs.get("top_p", gen.top_p)
    return params


class LocalChatHuggingFace(Prefill, ChatHuggingFace):
    """``ChatHuggingFace`` over a local pipeline, with our sampling knobs and async.

    Upstream raises ``NotImplementedError`` for async calls on a pipeline; the async
    methods here run the sync pipeline in a worker thread instead. The pipeline keeps
    no state between calls, so ``prefill`` is the no-op of :class:`Prefill`.
    """

    settings: Any = None

    def get_num_tokens(self, text: str) -> int:
        """Count tokens with the model's own tokenizer."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from super()._stream(
            messages,
            stop=stop,
            run_manager=run_manager,
            pipeline_kwargs=_pipeline_kwargs(kwargs, self.settings),
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        stream: bool | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(c.text for c in self._stream(messages, stop, None, **kwargs))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        stream: bool | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await BaseChatModel._agenerate(self, messages, stop, run_manager, **kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in BaseChatModel._astream(self, messages, stop, run_manager, **kwargs):
            yield chunk


def load_huggingface_chat_model(settings: Settings) -> BaseChatModel:
    """Load ``model.hf_model_dir`` as a chat model.

    Raises:
        ModelLoadError: The extra is not installed or the directory is not a model.
    """
    directory = settings.model.hf_model_dir
    if directory is None or not Path(directory).is_dir():
        raise ModelLoadError(
            f"model.hf_model_dir must be a local transformers model directory (got {directory})"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a transformers model from {directory}: {exc}") from exc
    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer, return_full_text=False)
    llm = HuggingFacePipeline(pipeline=pipe, model_id=str(directory))
    log.info("loaded %s in %.1f s", directory, time.perf_counter() - started)
    return LocalChatHuggingFace(
        llm=llm, tokenizer=tokenizer, model_id=str(directory), settings=settings
    )


def export_gguf_to_transformers(gguf: Path, out_dir: Path) -> Path:
    """Write a GGUF model as a plain transformers directory (dequantised weights).

    Useful to run a shipped GGUF on the huggingface backend, and as a starting point
    for fine-tuning. Needs the ``gguf`` and ``accelerate`` packages.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantised.config
    config.quantization_config = None  # the weights below are plain tensors
    plain = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    plain.load_state_dict(quantised.state_dict())
    out_dir.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
