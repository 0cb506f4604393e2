"""A model on an OpenAI-compatible chat server (vLLM, llama.cpp's server, Ollama), as a chat model.

The requests go through langchain-openai's ``BaseChatOpenAI`` (the class LangChain's own
OpenAI-compatible providers, DeepSeek and xAI, build on), kept for the process: one
``openai`` client with its connection pool, retries with back-off and timeouts. Not
``ChatOpenAI`` itself: it renames ``max_tokens`` to ``max_completion_tokens``, which
OpenAI's API wants and llama-cpp-python's server ignores (the reply then runs to the end
of the context window).

What this adds around it:

- The server is checked on first use (``GET /v1/models``): a server that is down, a
  model name it does not serve, a refused key and a timeout each become one
  :class:`ModelServerError` line naming the URL (and the names it serves).
- Our sampling keywords (``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``,
  ``seed``) are mapped as for llama.cpp: ``do_sample=False`` is temperature 0 (greedy).
  ``repeat_penalty`` has no OpenAI field (vLLM calls it ``repetition_penalty``, llama.cpp
  ``repeat_penalty``), so it is left to the server's default rather than guessed.
- Token counting for the prompt budget: a local tokenizer of the same family when
  ``model.tokenizer`` names one (a GGUF, whose vocabulary alone is read, or a
  ``tokenizer.json``); otherwise :func:`estimate_tokens`. tiktoken is not used: its
  encodings download on first use (we run offline), and they are OpenAI's, not the
  served model's.
- :class:`FirstTokenScores` from the server's ``logprobs`` (llama-cpp-python's server and
  vLLM return ``top_logprobs`` for chat completions), so the safety judge keeps its
  calibrated probability; a server without them makes it return None once and for all,
  and the judge asks for the verdict in words.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr, SecretStr

from tools.models.base import FirstTokenScores, ModelLoadError
from tools.text import shorten

log = logging.getLogger("assistant.llm")

# How many alternatives the server lists for the first reply token (OpenAI allows 0-20).
TOP_LOGPROBS = 20


class ModelServerError(ModelLoadError):
    """The model server is down, too slow, refuses us, or does not serve the model."""


# What a byte-level BPE tokenizer's pre-tokenizer splits text into before merging: a word
# with its leading space, one digit (Llama 3, Qwen and SmolLM2 split numbers), one other
# character with its leading space, a run of spaces. Every piece is at least one token.
_PIECES = re.compile(r" ?[A-Za-z]+|[0-9]| ?[^\sA-Za-z0-9]|\s+(?!\S)|\s+")
# Over the pieces' sum: the one measured undercount (German on SmolLM2) was 2 %.
_MARGIN = 1.1


def estimate_tokens(text: str) -> int:
    """A generous token count of ``text`` when no tokenizer of the served model is configured.

    The text is split as a byte-level BPE pre-tokenizer splits it (words, digits,
    punctuation, spaces); an ASCII word counts one token per 4 letters (at least one),
    anything else one per 1.5 UTF-8 bytes; 10 % is added. Measured against SmolLM2 and
    Qwen2.5 (the larger count of the two; byte-level BPE like Llama 3, Mistral and most
    served models) on our prompts, README, code, TOML, chat turns, numbers, URLs, emoji,
    German, Russian and Chinese: 1.09-1.71 times the real count, about 1.45 on English
    prose, never under. Characters/4 undercounted short chat turns ("Hi, I am Ada.", 2
    characters a token), numbers, and Russian or Chinese by up to eightfold.

    Args:
        text: Any text.

    Returns:
        The estimate in tokens (0 for an empty text).
    """
    pieces = 0.0
    for match in _PIECES.finditer(text):
        piece = match.group()
        if not piece.isascii():
            pieces += len(piece.encode("utf-8")) / 1.5
        elif piece.strip()[:1].isalpha():
            pieces += max(1, math.ceil(len(piece.strip()) / 4))
        else:
            pieces += 1
    return math.ceil(pieces * _MARGIN)


def load_tokenizer_counter(path: Path) -> Callable[[str], int]:
    """A token counter from a local tokenizer file: a GGUF or a ``tokenizer.json``.

    Args:
        path: A ``.gguf`` file (llama.cpp reads its vocabulary only, no weights) or a
            Hugging Face ``tokenizer.json``.

    Returns:
        ``count(text) -> tokens``, without BOS/EOS added.

    Raises:
        ModelLoadError: The file is missing or cannot be read as a tokenizer.
    """
    if not path.is_file():
        raise ModelLoadError(f"model.tokenizer: no such file: {path}")
    if path.suffix.lower() == ".gguf":
        try:
            from llama_cpp import Llama

            vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
        except (ImportError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"model.tokenizer: cannot read {path}: {exc}") from exc

        def count_gguf(text: str) -> int:
            return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))

        return count_gguf
    try:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        raise ModelLoadError(f"model.tokenizer: cannot read {path}: {exc}") from exc

    def count_json(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count_json


def candidate_scores(top: Sequence[dict[str, Any]], candidates: Sequence[str]) -> dict[str, float]:
    """Map a server's first-token alternatives onto reply openings.

    The served model's tokenizer is not at hand, so a listed token counts for the one
    candidate it is a prefix of ("un" for "unsafe"); a token that starts several
    candidates, or none, tells them apart not at all and is skipped. A candidate takes its
    most likely such token (its own first token, as the llama.cpp backend scores it, is
    normally that one); a candidate none of whose tokens is listed gets 0.

    Args:
        top: ``[{"token": str, "logprob": float}, ...]`` for the first reply position.
        candidates: Reply openings, e.g. ``["safe", "unsafe"]``.

    Returns:
        ``{candidate: probability}``, not renormalised.
    """
    scores = dict.fromkeys(candidates, 0.0)
    for entry in top:
        token = str(entry.get("token", ""))
        starts = [c for c in candidates if token and c.startswith(token)]
        if len(starts) == 1:
            scores[starts[0]] = max(scores[starts[0]], math.exp(float(entry["logprob"])))
    return scores


class RemoteChatModel(FirstTokenScores, BaseChatModel):
    """A chat model served over HTTP by an OpenAI-compatible server (``/v1/chat/completions``).

    Nothing is contacted at construction; the first call checks the server and the model
    name (see the module docstring) and every error names the server's URL.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base_url: str
    """The API root, e.g. ``http://127.0.0.1:8080/v1``."""
    api_key: SecretStr | None = None
    name: str = ""
    """The served model's name; empty = the first one the server lists."""
    timeout: float = 120.0
    """Seconds to connect, and between streamed pieces, before a request fails."""
    retries: int = 2
    tokenizer: Path | None = None
    """A local GGUF or tokenizer.json of the same family; None = :func:`estimate_tokens`."""
    n_ctx: int | None = None
    """The context window the prompt budget assumes; checked against a server that says its
    own (vLLM's ``max_model_len``)."""
    http_client: Any = None
    """An ``httpx.Client`` to send through (tests pass one with a mock transport)."""
    temperature: float = 0.2
    top_p: float = 0.9
    max_new_tokens: int = 256
    do_sample: bool = True
    seed: int = -1

    _client: Any = PrivateAttr(default=None)
    _served: str | None = PrivateAttr(default=None)
    _counter: Callable[[str], int] | None = PrivateAttr(default=None)
    _logprobs: bool = PrivateAttr(default=True)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    @property
    def model_name(self) -> str:
        """The served model's name (asks the server on first use)."""
        self._connect()
        assert self._served is not None
        return self._served

    def _connect(self) -> Any:
        """The kept ``BaseChatOpenAI``, after checking the server and the model once."""
        with self._lock:
            if self._client is None:
                try:
                    from langchain_openai.chat_models.base import BaseChatOpenAI
                except ImportError as exc:
                    raise ModelLoadError(
                        f"the openai backend needs its extra: pip install -e '.[remote]' ({exc})"
                    ) from exc
                # Building it contacts nothing; its openai client (and connection pool) is
                # the one the check and every later request go through.
                client = BaseChatOpenAI(
                    model=self.name or "unchecked",
                    base_url=self.base_url,
                    api_key=self._key(),
                    timeout=self.timeout,
                    # its own gap limit between streamed chunks (async calls only)
                    stream_chunk_timeout=self.timeout,
                    max_retries=self.retries,
                    http_client=self.http_client,
                )
                self._served = self._check_server(client.root_client)
                client.model_name = self._served
                self._client = client
            return self._client

    def _key(self) -> SecretStr:
        # The openai client insists on a key; servers without auth ignore this one.
        return self.api_key or SecretStr("not-needed")

    def _check_server(self, client: Any) -> str:
        """``GET /v1/models`` with the ``openai.OpenAI`` client: the name to use.

        Raises:
            ModelServerError: The server is down, too slow, refuses the key, serves no
                model or not the configured one, or has a smaller window than ``n_ctx``.
        """
        import openai

        try:
            listed = list(client.models.list())
        except openai.NotFoundError:
            # Some servers have no model list: a named model is tried as it is.
            if self.name:
                log.warning("%s has no /models list; using %r unchecked", self.base_url, self.name)
                return self.name
            raise ModelServerError(
                f"model server at {self.base_url} lists no models (/models: 404): set model.name"
            ) from None
        except openai.OpenAIError as exc:
            raise self._error(exc) from None
        names = [m.id for m in listed]
        if not names:
            raise ModelServerError(f"model server at {self.base_url} serves no models")
        if self.name and self.name not in names:
            raise ModelServerError(
                f"model server at {self.base_url} does not serve {self.name!r}; "
                f"it serves: {', '.join(names)}"
            )
        served = self.name or names[0]
        window = getattr(listed[names.index(served)], "max_model_len", None)
        if self.n_ctx and isinstance(window, int) and window < self.n_ctx:
            raise ModelServerError(
                f"model server at {self.base_url} runs {served!r} with a window of {window} "
                f"tokens, less than model.n_ctx ({self.n_ctx}) the prompt budget assumes"
            )
        log.info("model server at %s: using %r (of %s)", self.base_url, served, ", ".join(names))
        return served

    def _error(self, exc: Exception) -> ModelServerError:
        """One line for an ``openai`` exception: what failed, at which URL."""
        import openai

        where = f"model server at {self.base_url}"
        if isinstance(exc, openai.APITimeoutError):
            return ModelServerError(
                f"{where} did not answer within {self.timeout:g} s (model.timeout)"
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return ModelServerError(f"cannot reach the {where}: {cause}")
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return ModelServerError(f"{where} refused the API key (model.api_key): {_said(exc)}")
        if isinstance(exc, openai.NotFoundError):
            return ModelServerError(f"{where}: model {self._served!r} not found: {_said(exc)}")
        if isinstance(exc, openai.APIStatusError):
            return ModelServerError(f"{where} answered {exc.status_code}: {_said(exc)}")
        return ModelServerError(f"{where}: {exc}")

    def get_num_tokens(self, text: str) -> int:
        """Count with ``model.tokenizer`` if configured, else :func:`estimate_tokens`."""
        if self.tokenizer is None:
            return estimate_tokens(text)
        with self._lock:
            if self._counter is None:
                self._counter = load_tokenizer_counter(self.tokenizer)
        return self._counter(text)

    def _sampling(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Our sampling keywords as OpenAI request fields."""
        do_sample = kwargs.get("do_sample", self.do_sample)
        seed = kwargs.get("seed", self.seed)
        fields: dict[str, Any] = {
            "temperature": kwargs.get("temperature", self.temperature) if do_sample else 0.0,
            "top_p": kwargs.get("top_p", self.top_p),
            "max_tokens": kwargs.get("max_new_tokens", self.max_new_tokens),
        }
        if seed is not None and seed >= 0:
            fields["seed"] = seed
        for key in ("logprobs", "top_logprobs"):
            if key in kwargs:
                fields[key] = kwargs[key]
        return fields

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        import openai

        client = self._connect()
        try:
            # LangChain's stream()/invoke() report each chunk to the callbacks themselves.
            yield from client._stream(messages, stop=stop, **self._sampling(kwargs))
        except openai.OpenAIError as exc:
            raise self._error(exc) from None

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        import openai

        client = self._connect()
        try:
            result: ChatResult = client._generate(messages, stop=stop, **self._sampling(kwargs))
        except openai.OpenAIError as exc:
            raise self._error(exc) from None
        return result

    def first_token_probabilities(
        self, messages: Sequence[BaseMessage], candidates: Sequence[str]
    ) -> dict[str, float] | None:
        """The probability that the reply starts with each candidate, from ``logprobs``.

        One greedy request for one token with ``top_logprobs``; see
        :func:`candidate_scores` for how listed tokens map onto candidates.

        Returns:
            ``{candidate: probability}``; None if the server returns no logprobs (then
            it is not asked again).

        Raises:
            ModelServerError: The server is down, too slow or refuses the request.
        """
        if not self._logprobs:
            return None
        result = self._generate(
            list(messages),
            do_sample=False,
            max_new_tokens=1,
            logprobs=True,
            top_logprobs=TOP_LOGPROBS,
        )
        generation = result.generations[0]
        # BaseChatOpenAI puts them in generation_info (invoke() merges that into metadata).
        info = (generation.generation_info or {}).get("logprobs") or {}
        content = info.get("content") or []
        if not content or not content[0].get("top_logprobs"):
            log.info("%s returns no logprobs: the judge answers in words", self.base_url)
            self._logprobs = False
            return None
        return candidate_scores(content[0]["top_logprobs"], candidates)


def _said(exc: Any) -> str:
    """The server's own error message, shortened to one line."""
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if not message and isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
    text = str(message or exc).replace("\n", " ")
    return shorten(text, 203, "...")
