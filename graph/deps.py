"""What the nodes share: settings, the chat model, the safety filter, the prompts.

Built once per graph; the expensive parts (model weights, profanity tables) load on first
use, so compiling the graph (for the dev server, for a picture) stays instant.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.constants import TAG_NOSTREAM
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore

from graph.context import Context
from graph.settings import SafetyLevel, Settings
from graph.state import State
from tools.documents.store import DocumentStore
from tools.guardrails import SafetyFilter
from tools.memory.long_term import list_memories, profile
from tools.models import get_chat_model, with_adapter
from tools.models.embeddings import CachedQueryEmbeddings
from tools.prompting import Counter, MemoryHeadings, caching_counter, memory_headings
from tools.routing import AliasMatcher, ConceptRouter, load_concept_file, load_system_prompt

log = logging.getLogger("assistant.memory")


class Node(Protocol):
    """A node function: reads the state, returns the keys it changes."""

    def __call__(self, state: State) -> dict[str, Any]:
        """Run the node on the state."""
        ...


class ContextNode(Protocol):
    """A node function that also reads the run's context (safety level, sampling, ...)."""

    def __call__(self, state: State, *, runtime: Runtime[Context]) -> dict[str, Any]:
        """Run the node on the state with this run's runtime (``runtime.context``)."""
        ...


@dataclass
class Deps:
    """Long-lived collaborators of the nodes, and how a run's context overrides settings."""

    settings: Settings
    model_override: BaseChatModel | None = field(default=None, repr=False)
    _stores: dict[str, DocumentStore] = field(default_factory=dict, repr=False)
    _stores_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def model(self) -> BaseChatModel:
        """The chat model (weights load on its first call)."""
        return self.model_override or get_chat_model(self.settings)

    @cached_property
    def reply_model(self) -> BaseChatModel:
        """The model the reply is generated with: :attr:`model` with its LoRA adapter.

        Only the reply gets the adapter (``model.lora_path``); the safety judge, the
        summariser and the query rewriter call :attr:`model`, the base weights. Without an
        adapter both are the same model.
        """
        return with_adapter(self.model)

    @cached_property
    def count_tokens(self) -> Counter:
        """Token counter of the model's own tokenizer, memoised per text."""
        return caching_counter(self.model.get_num_tokens)

    @property
    def can_judge(self) -> bool:
        """Whether the chat model may judge messages: the fake backend's canned reply cannot."""
        return self.model_override is not None or self.settings.model.backend != "fake"

    @cached_property
    def safety(self) -> SafetyFilter:
        """Input and output guardrails configured from settings."""
        cfg = self.settings.safety
        return SafetyFilter(
            strict_terms=cfg.strict_terms,
            whitelist=cfg.whitelist,
            extra_terms=cfg.extra_terms,
            mild_terms=cfg.mild_terms,
            patterns_file=self.settings.prompts.directory / "safety.yaml",
        )

    @cached_property
    def embeddings(self) -> CachedQueryEmbeddings:
        """The shared embedding model, loaded on first use.

        A per-text cache of query vectors: a turn's message is embedded once for routing
        and retrieval together.
        """
        return CachedQueryEmbeddings()

    @cached_property
    def router(self) -> ConceptRouter:
        """Routes a message to a concept by its aliases and its meaning.

        Meaning (the concept file's examples) only with ``prompts.semantic``.
        """
        concepts = load_concept_file(self.settings.prompts.directory / "concepts.yaml")
        return ConceptRouter(
            concepts,
            self.embeddings if self.settings.prompts.semantic else None,
            cache_dir=self.settings.cache_dir,
        )

    @property
    def aliases(self) -> AliasMatcher:
        """Alias matcher over the concept file (the router's)."""
        return self.router.matcher

    @cached_property
    def system_prompt(self) -> str:
        """The base system prompt."""
        return load_system_prompt(self.settings.prompts.directory / "system.md")

    @cached_property
    def summary_prompt(self) -> str:
        """Instructions for the summariser."""
        return load_system_prompt(self.settings.prompts.directory / "summarise.md")

    @cached_property
    def memory_headings(self) -> MemoryHeadings:
        """The headings memory goes under in prompts (``memory.yaml``)."""
        return memory_headings(self.settings.prompts.directory / "memory.yaml")

    def user_id(self, context: Context | None) -> str:
        """Whose long-term memories this run uses: the context's user, else the setting."""
        if context is not None and context.user_id:
            return context.user_id
        return self.settings.long_term.user_id

    def remembers(self, context: Context | None) -> bool:
        """Whether this run may keep anything in long-term memory."""
        if not self.settings.long_term.enabled:
            return False
        return context is None or context.remember is not False

    def recalls(self, context: Context | None) -> bool:
        """Whether this run may bring back anything from long-term memory."""
        if not self.settings.long_term.enabled:
            return False
        return context is None or context.recall is not False

    def profile(self, store: BaseStore, user_id: str) -> str:
        """The user's facts as prompt lines, within ``long_term.profile_tokens``."""
        cfg = self.settings.long_term
        if not (cfg.enabled and cfg.facts and cfg.profile_tokens):
            return ""
        facts = list_memories(store, user_id, kinds=("facts",), limit=200)
        return profile(facts, self.count_tokens, cfg.profile_tokens)

    def prefill(self, messages: Sequence[BaseMessage]) -> int:
        """Evaluate ``messages`` as the prompt prefix of the next call, if the model can.

        llama.cpp keeps the evaluated prompt, and the next turn resumes from the longest
        common prefix; warming the prefix right after a summary (while the user reads the
        reply) keeps that work out of the next turn's time to first token. Other backends
        do nothing. Returns the tokens now ready (0 when nothing was done).
        """
        started = time.perf_counter()
        warm = getattr(self.reply_model, "prefill", None)  # the prefix of the next reply
        if callable(warm):
            ready = int(warm(list(messages)))
        elif getattr(self.reply_model, "_llm_type", "") == "llamacpp":
            # A model without prefill() that keeps its last prompt (llama.cpp): a one-token
            # answer to an empty message leaves the prefix in its KV cache, and the next
            # turn's prompt starts with the same tokens.
            self.reply_model.invoke(
                [*messages, HumanMessage("")],
                config={"tags": [TAG_NOSTREAM]},
                temperature=0.0,
                do_sample=False,
                max_new_tokens=1,
            )
            ready = sum(self.count_tokens(m.text) for m in messages)
        else:
            return 0
        log.info("prefilled %d prompt tokens in %.2f s", ready, time.perf_counter() - started)
        return ready

    def prompt_file(self, name: str) -> str:
        """A prompt from the prompts folder (documents.md, rewrite.md, ...)."""
        return _read_prompt(self.settings.prompts.directory / name)

    def documents(self, collection: str) -> DocumentStore:
        """The document store of a collection, opened once (the embeddings load lazily)."""
        with self._stores_lock:
            if collection not in self._stores:
                self._stores[collection] = DocumentStore(
                    self.settings, collection, embeddings=self.embeddings
                )
            return self._stores[collection]

    def retrieval(self, context: Context | None) -> tuple[bool, str]:
        """Return this run's retrieval switch and collection (the context's, else settings')."""
        ctx = context or Context()
        enabled = self.settings.retrieval.enabled if ctx.retrieval is None else ctx.retrieval
        return enabled, ctx.collection or self.settings.chroma.collection

    def safety_level(self, context: Context | None) -> SafetyLevel:
        """Return this run's safety level: the context's, else the configured one."""
        if context is not None and context.safety_level is not None:
            return context.safety_level
        return self.settings.safety.sensitivity_level

    def fuzzy(self, context: Context | None) -> tuple[bool, float]:
        """Return this run's fuzzy alias matching switch and cutoff."""
        cfg = self.settings.prompts
        ctx = context or Context()
        return (
            cfg.fuzzy if ctx.fuzzy_aliases is None else ctx.fuzzy_aliases,
            cfg.fuzzy_cutoff if ctx.fuzzy_cutoff is None else ctx.fuzzy_cutoff,
        )

    def sampling(self, context: Context | None) -> dict[str, Any]:
        """Sampling keyword arguments for the model: the context's, else the settings'."""
        gen = self.settings.generation
        ctx = context or Context()
        return {
            "temperature": gen.temperature if ctx.temperature is None else ctx.temperature,
            "top_p": gen.top_p if ctx.top_p is None else ctx.top_p,
            "max_new_tokens": (
                gen.max_new_tokens if ctx.max_new_tokens is None else ctx.max_new_tokens
            ),
            "do_sample": gen.do_sample if ctx.do_sample is None else ctx.do_sample,
            "repeat_penalty": gen.repeat_penalty,
            "seed": gen.seed,
        }


@lru_cache(maxsize=32)
def _read_prompt(path: Path) -> str:
    return load_system_prompt(path)
