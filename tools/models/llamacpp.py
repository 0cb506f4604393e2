"""llama.cpp in-process (llama-cpp-python) over any GGUF file, as a LangChain chat model.

Why ours and not langchain-community's ``ChatLlamaCpp`` (0.4.2, checked on
llama-cpp-python 0.3.36 with SmolLM2-135M and the default Qwen2.5-Coder-1.5B):

- It loads the weights in its pydantic validator and needs ``model_path`` when it is
  built, so building the graph (dev server, picture) would load them (0.1 s and 0.8 s)
  and fail on a missing file; ours loads on first use and resolves the path then.
- Call keywords go to ``create_chat_completion`` unchanged: ``max_new_tokens`` and
  ``do_sample`` raise TypeError.
- ``invoke(..., stop=[...])`` ignores ``stop`` (with ``streaming=True``, its default,
  ``_generate`` calls ``_stream`` without it): the reply ran on to ``max_tokens``.
- It passes ``rope_freq_base=10000`` to ``Llama``, overriding the GGUF's own (1e5 in
  SmolLM2, 1e6 in Qwen2.5): SmolLM2's greedy "1, 2, 3, ..." for "list 1 to 200"
  became "1. 200", "2. 356", "3. 489" (passing 0, "from the model", fixes it).
- ``get_num_tokens`` falls back to GPT-2's tokenizer; offline it gave 0 for a text of
  5 model tokens (our prompt budget needs the model's own count).
- No lock: two threads streaming on one instance aborted the process
  (``GGML_ASSERT(i1 >= 0 && i1 < ne1)``) in 4 runs of 4. Ours serialises calls on the
  one context (without the lock it crashes too) and both threads get a lone call's text.
- langchain-community warns on import that it is sunset and no longer maintained.

It streams through callbacks once per token and reports ``finish_reason`` as ours
does, and decodes as fast: 128 greedy tokens on one shared context, 1 thread, median
of 6 runs in rotating order on a loaded 2-core machine (load average 2-3), tokens/s:
SmolLM2 raw ``create_chat_completion(stream=True)`` 41.1, ours 41.6, ChatLlamaCpp 41.6;
1.5B 5.0, 5.3, 5.2. Speed is no reason either way; a subclass fixing the above would
replace its validator, ``_generate``, ``_stream`` and ``get_num_tokens``: all of it
but the message conversion, which :func:`tools.models.base.to_chat_dicts` does.

llama.cpp keeps the KV cache of the last prompt only. The model here adds a prefix state
cache (:mod:`tools.models.state_cache`): before a prompt is evaluated, the context is
restored from the saved state sharing the longest token prefix with it, and the context
it replaces is saved first. So prompt families that alternate on one model (the chat, and
side calls with their own fixed instructions) each resume from their own prefix.

A LoRA adapter (``lora_path``) is loaded with the model but applied per call: the reply
asks for it (:meth:`LlamaCppChatModel.with_adapter`), the side calls (safety judge,
summary, query rewrite) run on the base weights. One model in memory, one context:
llama.cpp switches adapters on a context without reloading anything
(``llama_set_adapters_lora``), where a second instance would hold the weights and a
context twice. Saved prompt states are keyed by the adapter, so cells computed with it
are never resumed without it.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

from graph.settings import not_a_file
from tools.models.base import (
    Adapter,
    FirstTokenScores,
    ModelLoadError,
    Prefill,
    collect,
    to_chat_dicts,
)
from tools.models.compute_thread import ComputeThread
from tools.models.state_cache import CachedState, PrefixStateCache, as_tokens, common_prefix
from tools.models.state_files import StateFiles

log = logging.getLogger("assistant.llm")

# llama.cpp is built with OpenMP (GGML_OPENMP, libgomp). With OMP_WAIT_POLICY unset,
# libgomp lets an idle thread spin 300,000 times (milliseconds) before it sleeps, and uses
# 1,000 only when it sees more threads than cores. Here there are more: n_threads uses
# every core, and the graph streams each token to a consumer in another thread (LangGraph
# runs the node in a worker), besides torch's own OpenMP team and other processes. After
# each token the spinning worker held a core the consumer needed, and a barrier inside a
# token waited on a descheduled thread. 1,000 spins (tens of microseconds) still cover a
# barrier inside a token; then the thread sleeps. libgomp reads this when it loads (with
# the first llama_cpp or torch import), so it is set here, at import; a value set in the
# environment wins.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

DEFAULT_STATE_CACHE_MB = 256
# A state is restored only if it spares at least this many token evaluations, and the
# context is saved only if a call would drop at least this many of its tokens: below
# that, copying the state costs about as much as evaluating the tokens again.
MIN_REUSE_TOKENS = 16
_SEQ = 0  # the one sequence a llama_cpp.Llama context uses


class LlamaCppChatModel(Adapter, Prefill, FirstTokenScores, BaseChatModel):
    """A GGUF model run in-process by llama.cpp (llama-cpp-python).

    The model is loaded on first use, not at construction, so building the graph is
    instant. llama.cpp keeps the KV cache of the previous prompt and reuses its longest
    common prefix, so a growing conversation only pays for its new tokens; with
    ``state_cache_mb`` > 0, states of earlier prompts are kept too (see the module
    docstring), so a side call in between does not cost the chat its prefix.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str | None = None
    """GGUF file; None = resolve with ``path_resolver`` at load time."""
    path_resolver: Callable[[], Path] | None = None
    lora_path: str | None = None
    """A GGUF LoRA adapter loaded with the model; None = none.

    Loading it does not apply it: calls on this instance run on the base weights, calls
    on :meth:`with_adapter`'s view of it (the same weights and context) run with the
    adapter, so the reply can use it while the safety judge and other side calls do not.
    """
    use_adapter: bool = False
    """Whether calls on this instance apply ``lora_path`` (set by :meth:`with_adapter`)."""
    n_ctx: int = 4096
    n_threads: int | None = None
    """Threads generating tokens; None = every core."""
    n_threads_batch: int | None = None
    """Threads reading prompts (batches of tokens); None = every core."""
    n_batch: int = 256
    temperature: float = 0.2
    top_p: float = 0.9
    max_new_tokens: int = 256
    do_sample: bool = True
    repeat_penalty: float = 1.1
    seed: int = -1
    state_cache_mb: int = DEFAULT_STATE_CACHE_MB
    """RAM for saved prompt states (KV cells), in MiB; 0 = keep only the live context."""
    state_dir: str | None = None
    """Where states of fixed prefixes outlive the process; None = nowhere."""
    state_files_mb: int = 0
    """Disk for the files in ``state_dir``, in MiB; 0 = none kept (needs the RAM cache)."""

    # Shared with the adapter view (model_copy copies the reference): one llama.cpp
    # context, one lock, one state cache for both.
    _shared: _Shared = PrivateAttr(default_factory=lambda: _Shared())

    @property
    def _llm_type(self) -> str:
        return "llamacpp"

    @property
    def _lock(self) -> threading.RLock:
        return self._shared.lock

    @property
    def _llama(self) -> Any:
        return self._shared.llama

    @property
    def _cache(self) -> PrefixStateCache | None:
        return self._shared.cache

    @property
    def llama(self) -> Any:
        """The loaded ``llama_cpp.Llama`` (loads it on first access)."""
        with self._lock:
            if self._shared.llama is None:
                self._shared.llama = self._load()
            return self._shared.llama

    def with_adapter(self) -> LlamaCppChatModel:  # narrows Adapter's return type
        """Return the model with its LoRA adapter on for every call (itself if it has none).

        The view shares the weights, the context, the lock and the state cache; each
        call sets the adapter on the context or takes it off (:meth:`_activate`).
        """
        if not self.lora_path or self.use_adapter:
            return self
        return self.model_copy(update={"use_adapter": True})

    @property
    def adapter_key(self) -> str:
        """What a prompt state computed by this instance's calls is keyed by.

        ``""`` for the base weights, else the adapter's path: a saved state is only
        restored for calls with the same key.
        """
        return self.lora_path if self.lora_path and self.use_adapter else ""

    def _load(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelLoadError(
                "llama-cpp-python is not installed: run `make install` (it builds llama.cpp, "
                "~20 min on 2 cores) or set ASSISTANT_MODEL__BACKEND=fake"
            ) from exc
        path = Path(self.model_path) if self.model_path else None
        if path is None and self.path_resolver is not None:
            path = self.path_resolver()
        if path is None:
            raise ModelLoadError("GGUF model file not found: None")
        problem = not_a_file(path, "file not found")
        if problem:
            raise ModelLoadError(f"GGUF model {problem}")
        lora = Path(self.lora_path) if self.lora_path else None
        problem = not_a_file(lora, "file not found") if lora is not None else None
        if problem:
            raise ModelLoadError(f"LoRA adapter {problem}")
        started = time.perf_counter()
        try:
            # Not Llama(lora_path=...): that applies the adapter to every call and turns
            # memory mapping off; the adapter is loaded below and switched per call.
            llama = Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads or os.cpu_count() or 1,
                n_threads_batch=self.n_threads_batch or os.cpu_count() or 1,
                n_batch=self.n_batch,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"llama.cpp cannot load {path}: {exc}") from exc
        if lora is not None:
            self._shared.adapter = _load_adapter(llama, lora)
        log.info(
            "loaded %s%s in %.1f s",
            path.name,
            f" with adapter {lora.name}" if lora else "",
            time.perf_counter() - started,
        )
        self._shared.prompt_formatter = _prompt_formatter(llama)
        if self.state_cache_mb > 0 and _can_trim(llama):
            self._shared.cache = PrefixStateCache(self.state_cache_mb * 2**20)
            _resume_before_generate(llama, self._resume)
            if self.state_dir and self.state_files_mb > 0:
                self._shared.files = StateFiles(
                    Path(self.state_dir), self._identity(path, lora), self.state_files_mb * 2**20
                )
        return llama

    def _identity(self, path: Path, lora: Path | None) -> str:
        """What a prompt state depends on besides its tokens (the name of its files).

        The weights (file, size, time of change and a digest of its first and last MiB,
        so other weights copied in with the same size and time are told apart; the
        adapter's too), the context's sizes (a prompt cut into other batches sums to
        slightly other cells) and the binding's version (its state format).
        """
        import llama_cpp

        parts = [
            f"llama_cpp {llama_cpp.__version__}",
            f"n_ctx {self.n_ctx}",
            f"n_batch {self.n_batch}",
        ]
        for file in (path, lora):
            if file is not None:
                stat = file.stat()
                digest = hashlib.sha256()
                with file.open("rb") as weights:
                    digest.update(weights.read(2**20))
                    weights.seek(max(0, stat.st_size - 2**20))
                    digest.update(weights.read(2**20))
                parts.append(
                    f"{file.resolve()} {stat.st_size} {stat.st_mtime_ns} {digest.hexdigest()}"
                )
        return "\n".join(parts)

    def _activate(self) -> None:
        """Put this instance's adapter choice on the context; call under the lock.

        The context's KV cells were computed with whatever was active before, so a switch
        saves them (keyed by the old choice) and empties the context: nothing evaluated
        with the adapter is resumed without it, or the other way round.
        """
        shared, llama = self._shared, self._shared.llama
        want = shared.adapter if self.use_adapter else None
        if want is shared.active:
            return
        import llama_cpp

        if shared.cache is not None and llama.n_tokens >= MIN_REUSE_TOKENS:
            self._save()  # keyed by the adapter still active
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llama.ctx), _SEQ, 0, -1)
        llama.n_tokens = 0
        if want is None:
            failed = llama_cpp.llama_set_adapters_lora(llama.ctx, None, 0, None)
        else:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(want)
            scales = (ctypes.c_float * 1)(1.0)
            failed = llama_cpp.llama_set_adapters_lora(llama.ctx, adapters, 1, scales)
        if failed:
            raise RuntimeError(f"llama.cpp could not {'set' if want else 'clear'} the adapter")
        shared.active = want
        shared.active_key = self.adapter_key

    @property
    def state_cache(self) -> PrefixStateCache | None:
        """The saved prompt states (None until loaded, or when the cache is off)."""
        return self._cache

    def prefill(self, messages: Sequence[BaseMessage], *, persist: bool = False) -> int:
        """Evaluate ``messages`` as a prompt prefix now and save its state.

        The prefix is what every next prompt after ``messages`` starts with: the GGUF
        chat template's rendering of them and the opening marker of the next turn
        (:meth:`_prefix_tokens`). Calls wait for the model's lock, so a background
        prefill delays a concurrent call by at most its own evaluation.

        Args:
            messages: The leading messages of a prompt to come.
            persist: Keep the state on disk too (``state_dir``), and read it from there
                instead of evaluating when a file holds it: for fixed prefixes (the
                safety judge's), never for a conversation's.

        Returns:
            The prefix length in tokens; 0 if the GGUF has no chat template (or uses a
            custom chat handler) or the prefix does not fit in the context window.

        Raises:
            ModelLoadError: The model cannot be loaded.
            RuntimeError: llama.cpp failed to evaluate the prefix.
        """
        llama = self.llama
        if self._shared.prompt_formatter is None or not messages:
            return 0
        tokens = self._prefix_tokens(messages)
        if not tokens or len(tokens) >= llama.n_ctx():
            return 0

        files = self._shared.files if persist else None

        def warm() -> int:
            with self._lock:
                self._activate()
                key, wanted = self._shared.active_key, as_tokens(tokens)
                cache, read, write = self._cache, None, files is not None
                if files is not None and cache is not None and not cache.covers(wanted, key):
                    read = files.load(wanted, key)
                    if read is not None and not cache.store(wanted, read, key):
                        # Restores go through the RAM cache: a state it cannot hold is
                        # evaluated, and writing it again would not help the next process.
                        log.warning(
                            "a saved prompt state (%.0f MiB) is over model.state_cache_mb; "
                            "evaluating its prefix",
                            len(read) / 2**20,
                        )
                        write = False
                if cache is not None:
                    self._resume(tokens)
                keep = common_prefix(llama.input_ids[: llama.n_tokens], wanted)
                if keep < len(tokens):
                    if read is not None and files is not None and write:
                        files.discard(wanted, key)  # read whole, but llama.cpp refused it
                    llama.n_tokens = keep  # eval drops the KV cells from here on
                    llama.eval(tokens[keep:])
                elif llama.n_tokens > len(tokens):
                    # Already held inside a longer context: nothing to evaluate or save.
                    return len(tokens)
                if cache is not None:
                    saved = self._save()
                    if files is not None and saved is not None and write:
                        files.save(wanted, saved, key)
            return len(tokens)

        return self._shared.compute.call(warm)

    def _prefix_tokens(self, messages: Sequence[BaseMessage]) -> list[int]:
        """The tokens that every next prompt after ``messages`` starts with.

        The reply's header or another message follows them, and both open with the
        template's turn marker (``<|im_start|>``), so it belongs to the prefix. Scores
        (:meth:`_scores`) cut their prompt at the same token, so a warmed prefix is what
        they resume, batch for batch: one token more or less evaluated apart moves the
        sums (the default 1.5B judge's P(unsafe) of one message: 0.989 and 0.987).
        """
        formatter, llama = self._shared.prompt_formatter, self._llama
        chat = to_chat_dicts(messages)

        def tokens(text: str) -> list[int]:
            return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

        reply = tokens(formatter(messages=chat).prompt)
        try:
            more = tokens(formatter(messages=[*chat, {"role": "user", "content": ""}]).prompt)
        except Exception:  # a template that wants roles to alternate: the reply comes next
            return reply
        return reply[: common_prefix(reply, as_tokens(more))]

    def first_token_probabilities(
        self, messages: Sequence[BaseMessage], candidates: Sequence[str]
    ) -> dict[str, float] | None:
        """The probability that the reply starts with each candidate (see the mixin).

        One forward pass over the prompt's new tokens (the prefix is resumed as for any
        call) and a softmax over the last position's logits: no token is sampled.
        Candidates are tokenised as the reply's first word (no leading space).

        Returns:
            ``{candidate: probability}``; None if the GGUF has no chat template or the
            prompt does not fit in the context window.

        Raises:
            ModelLoadError: The model cannot be loaded.
            ValueError: Two candidates start with the same token, or one is empty.
        """
        return self._scores(messages, "", candidates)

    def next_token_probabilities(
        self, messages: Sequence[BaseMessage], reply_start: str, candidates: Sequence[str]
    ) -> dict[str, float] | None:
        """The probability of each candidate right after ``reply_start`` (see the mixin).

        As :meth:`first_token_probabilities`, with ``reply_start`` appended to the
        prompt as the reply's opening; the candidates are tokenised on their own (a
        digit after ``"unsafe S"`` is its own token in the tokenizers we ship).

        Returns:
            ``{candidate: probability}``; None as for :meth:`first_token_probabilities`.

        Raises:
            ModelLoadError: The model cannot be loaded.
            ValueError: Two candidates start with the same token, or one is empty.
        """
        return self._scores(messages, reply_start, candidates)

    def _scores(
        self, messages: Sequence[BaseMessage], reply_start: str, candidates: Sequence[str]
    ) -> dict[str, float] | None:
        """The next-token probabilities of ``candidates`` after the prompt and ``reply_start``."""
        import numpy as np

        llama = self.llama
        if self._shared.prompt_formatter is None:
            return None
        firsts: dict[str, int] = {}
        for candidate in candidates:
            ids = llama.tokenize(candidate.encode("utf-8"), add_bos=False, special=False)
            if not ids:
                raise ValueError(f"empty candidate {candidate!r}")
            firsts[candidate] = ids[0]
        if len(set(firsts.values())) < len(firsts):
            raise ValueError(f"candidates share a first token: {list(candidates)}")
        formatter = self._shared.prompt_formatter
        prompt = formatter(messages=to_chat_dicts(messages)).prompt
        tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        if reply_start:
            # Tokenised apart, as the model's own reply tokens follow the prompt's.
            tokens += llama.tokenize(reply_start.encode("utf-8"), add_bos=False, special=False)
        if not tokens or len(tokens) >= llama.n_ctx():
            return None
        # Where the last message starts: the scores must not depend on what the context
        # held before. llama.cpp's sums differ with how a prompt is cut into evaluations
        # (on the default 1.5B, P("Yes") 0.740 scored alone, 0.750 after a message sharing
        # its first words), so a judge's verdict moved with the order of the checks.
        # Everything before the last message is evaluated on its own, the rest from there.
        boundary = len(tokens) - 1
        if len(messages) > 1:
            head = formatter(messages=to_chat_dicts(messages[:-1])).prompt
            head_tokens = llama.tokenize(head.encode("utf-8"), add_bos=False, special=True)
            boundary = min(common_prefix(head_tokens, as_tokens(tokens)), boundary)

        def evaluate() -> Any:
            with self._lock:
                self._activate()
                if self._cache is not None:
                    self._resume(tokens)
                keep = common_prefix(llama.input_ids[: llama.n_tokens], as_tokens(tokens))
                if keep < boundary:
                    llama.n_tokens = keep
                    llama.eval(tokens[keep:boundary])
                # the last message (at least one token) from its start, whatever was live
                llama.n_tokens = boundary
                llama.eval(tokens[boundary:])
                shape = (llama.n_vocab(),)
                return np.ctypeslib.as_array(llama._ctx.get_logits(), shape=shape).astype(
                    np.float64
                )

        logits = self._shared.compute.call(evaluate)
        logits -= logits.max()
        total = float(np.exp(logits).sum())
        return {c: float(np.exp(logits[i])) / total for c, i in firsts.items()}

    def _resume(self, prompt: Sequence[int]) -> None:
        """Make the context hold the longest prefix of ``prompt`` that is saved or live.

        Runs under the lock just before llama.cpp evaluates ``prompt``; llama-cpp-python
        then keeps the common prefix of the context and evaluates the rest (at least the
        last prompt token, so the logits are fresh).
        """
        llama, cache = self._llama, self._cache
        assert cache is not None  # the hook is installed only with a cache
        tokens = as_tokens(prompt)
        held = llama.input_ids[: llama.n_tokens]
        live = common_prefix(held, tokens)
        match = cache.longest_prefix(tokens, self._shared.active_key)
        restore = match is not None and match.prefix >= live + MIN_REUSE_TOKENS
        kept = common_prefix(held, match.state.tokens) if match and restore else live
        if llama.n_tokens - kept >= MIN_REUSE_TOKENS:
            self._save()
        if match is not None and restore:
            self._restore(match.state)

    def _save(self) -> bytearray | None:
        """Save the live context's KV cells and tokens, unless a saved state holds them.

        Returns:
            The state's bytes when they were taken now; None when nothing was saved.
        """
        llama, cache = self._llama, self._cache
        assert cache is not None
        n = llama.n_tokens
        tokens = as_tokens(llama.input_ids[:n])
        key = self._shared.active_key
        if n == 0 or cache.covers(tokens, key):
            return None
        import llama_cpp

        started = time.perf_counter()
        # Cells past n_tokens (left by a stopped generation) must not enter the state.
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llama.ctx), _SEQ, n, -1)
        size = llama_cpp.llama_state_seq_get_size(llama.ctx, _SEQ)
        data = bytearray(size)
        view = (ctypes.c_uint8 * size).from_buffer(data)
        written = llama_cpp.llama_state_seq_get_data(llama.ctx, view, size, _SEQ)
        del view  # release the export so the bytearray can shrink
        if written == 0:
            log.warning("llama.cpp could not save the state of %d tokens", n)
            return None
        del data[written:]
        stored = cache.store(tokens, data, key)
        log.debug(
            "state cache: saved %d tokens (%.1f MiB%s) in %.0f ms; %d entries, %.0f MiB",
            n,
            written / 2**20,
            "" if stored else ", over capacity",
            (time.perf_counter() - started) * 1000,
            len(cache),
            cache.nbytes / 2**20,
        )
        return data

    def _restore(self, state: CachedState) -> None:
        """Replace the context with a saved state."""
        llama, cache = self._llama, self._cache
        assert cache is not None
        import llama_cpp

        started = time.perf_counter()
        view = (ctypes.c_uint8 * len(state.data)).from_buffer(state.data)
        read = llama_cpp.llama_state_seq_set_data(llama.ctx, view, len(state.data), _SEQ)
        del view
        if read == 0:
            # The sequence is left empty: evaluate the whole prompt, as without a cache.
            log.warning("llama.cpp could not restore a saved state; dropping it")
            cache.discard(state)
            llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llama.ctx), _SEQ, 0, -1)
            llama.n_tokens = 0
            return
        n = len(state.tokens)
        llama.input_ids[:n] = state.tokens
        llama.n_tokens = n
        # llama-cpp-python's own flag (its load_state sets it too): the logits are not
        # those of the last token, so an exact prompt hit must re-evaluate one token.
        llama._requires_eval = True
        log.debug(
            "state cache: restored %d tokens in %.0f ms",
            n,
            (time.perf_counter() - started) * 1000,
        )

    def get_num_tokens(self, text: str) -> int:
        """Count tokens with the model's own tokenizer."""
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _sampling(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        do_sample = kwargs.get("do_sample", self.do_sample)
        return {
            # temperature 0 makes llama.cpp sample greedily
            "temperature": kwargs.get("temperature", self.temperature) if do_sample else 0.0,
            "top_p": kwargs.get("top_p", self.top_p),
            "max_tokens": kwargs.get("max_new_tokens", self.max_new_tokens),
            "repeat_penalty": kwargs.get("repeat_penalty", self.repeat_penalty),
            "seed": kwargs.get("seed", self.seed),
        }

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        llama = self.llama
        sampling = self._sampling(kwargs)

        def chunks() -> Iterator[Any]:
            with self._lock:
                self._activate()
                yield from llama.create_chat_completion(
                    messages=to_chat_dicts(messages), stream=True, stop=stop, **sampling
                )

        finish = None
        for chunk in self._shared.compute.stream(chunks):
            choice = chunk["choices"][0]
            finish = choice.get("finish_reason") or finish
            text = choice["delta"].get("content")
            if text:
                yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="", response_metadata={"finish_reason": finish, "model": self._llm_type}
            )
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return collect(self._stream(messages, stop, run_manager, **kwargs))


@dataclass
class _Shared:
    """What a model and its adapter view share: the context and its bookkeeping."""

    llama: Any = None
    # llama.cpp contexts are not thread-safe; the dev server runs turns concurrently.
    # The state cache and the context are only touched under this lock.
    lock: threading.RLock = field(default_factory=threading.RLock)
    compute: ComputeThread = field(default_factory=ComputeThread)
    """The one thread every evaluation runs on (:mod:`tools.models.compute_thread`)."""
    cache: PrefixStateCache | None = None
    files: StateFiles | None = None
    """States of fixed prefixes on disk (:meth:`LlamaCppChatModel.prefill` with persist)."""
    prompt_formatter: Any = None
    adapter: Any = None
    """The loaded LoRA adapter (a ``llama_adapter_lora_p``), None without ``lora_path``."""
    active: Any = None
    """The adapter set on the context now (None = base weights)."""
    active_key: str = ""
    """:attr:`LlamaCppChatModel.adapter_key` of the calls that filled the context."""


def _load_adapter(llama: Any, path: Path) -> Any:
    """Load a GGUF LoRA adapter for ``llama``'s model, not applied to any context yet.

    llama.cpp frees it with the model.

    Raises:
        ModelLoadError: llama.cpp cannot read it (not a LoRA GGUF, another base model).
    """
    import llama_cpp

    adapter = llama_cpp.llama_adapter_lora_init(llama.model, str(path).encode("utf-8"))
    if not adapter:
        raise ModelLoadError(
            f"llama.cpp cannot load the LoRA adapter {path}: not a LoRA GGUF, or made for "
            f"another base model than {Path(llama.model_path).name}"
        )
    return adapter


def _can_trim(llama: Any) -> bool:
    """Whether the context can drop a suffix of its KV cells (not recurrent models)."""
    import llama_cpp

    model = llama.model
    return not (llama_cpp.llama_model_is_recurrent(model) or llama_cpp.llama_model_is_hybrid(model))


def _resume_before_generate(llama: Any, resume: Callable[[Sequence[int]], None]) -> None:
    """Call ``resume(prompt_tokens)`` whenever ``llama`` starts evaluating a prompt.

    ``Llama.generate`` receives the exact prompt tokens of every completion (after the
    chat template), before its own prefix matching, so the hook sits there.
    """
    stock = llama.generate

    def generate(tokens: Sequence[int], *args: Any, **kwargs: Any) -> Any:
        resume(tokens)
        return stock(tokens, *args, **kwargs)

    llama.generate = generate


def _prompt_formatter(llama: Any) -> Any:
    """The GGUF chat template, as llama-cpp-python's default handler renders it.

    The whole prompt of a reply, its assistant header included; None if the GGUF has no
    template or a custom chat handler renders its prompts.
    """
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template or llama.chat_handler is not None:
        return None

    def text(token: int) -> str:
        if token < 0:
            return ""
        return str(llama.detokenize([token], special=True).decode("utf-8", errors="replace"))

    return Jinja2ChatFormatter(
        template=template,
        eos_token=text(llama.token_eos()),
        bos_token=text(llama.token_bos()),
        add_generation_prompt=True,
    )
