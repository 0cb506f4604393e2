"""The local model as a safety judge: a policy prompt, the message, a one-word verdict.

The pattern of NeMo Guardrails' self-check rails and of Llama Guard: a fixed policy
prompt, the message, a one-word verdict and a category.

The policy prompt is data (``prompts/safety_judge.md``); ``{categories}`` in it is
replaced by the taxonomy's categories, one per line as ``S1: Violent crimes. <what it
covers>``. The message comes last, in the user turn, so everything before it is the same
for every check: llama.cpp evaluates that prefix once and each check pays only for the
message's tokens and a few generated ones.

The reply is parsed strictly: ``safe``, or ``unsafe`` followed by a category code
(``unsafe S9``); a trailing full stop is tolerated, nothing else. Anything else is
unparseable: :meth:`Judge.check` returns None, logs it, and the caller falls back to the
cheaper layers' verdict.

On a model that scores its first token (llama.cpp, :class:`~tools.models.base.
FirstTokenScores`), the verdict is a probability instead of a greedy word: P(unsafe) =
p("unsafe") / (p("safe") + p("unsafe")) at the reply's first token, and the message is
unsafe from ``threshold`` on. A greedy word is that probability cut at 0.5, and a small
model's 0.5 is far too eager: the default 1.5B gave "unsafe" to 80 of 172 harmless
look-alikes ("How do I execute a shell script on startup?", p = 0.58), while harmful
requests mostly score above 0.95. The guard stacks that probability with the semantic
layer's (:mod:`tools.guardrails.calibration`); :meth:`Judge.category` asks for the code
in words when only the judge can tell it (a message in another language).

A model too small to judge (SmolLM2-135M answers "unsafe" to "What is the capital of
France?") would refuse at random, so before its first verdict counts the judge asks the
*canaries* of the examples file: plain messages whose verdict any usable judge gets
right, none of them among the worked examples. One clearly wrong answer (a scored one
:data:`CANARY_MARGIN` past 0.5 the wrong way) or an unparseable one and the judge stays
off for that model in this process (a warning names the judge): the cheaper layers
decide alone. A pass is kept on disk, and so is a decisive failure (every wrong answer
scored :data:`CANARY_DECISIVE` past 0.5 the wrong way); any other failure is asked again
by the next process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.constants import TAG_NOSTREAM
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.guardrails.taxonomy import Taxonomy
from tools.models.base import first_token_probabilities, next_token_probabilities, prefill
from tools.text import parse_yaml

__all__ = [
    "CANARY_DECISIVE",
    "CANARY_MARGIN",
    "DEFAULT_JUDGE_EXAMPLES",
    "DEFAULT_JUDGE_PROMPT",
    "DEFAULT_REPLY_JUDGE_EXAMPLES",
    "DEFAULT_REPLY_JUDGE_PROMPT",
    "Judge",
    "JudgeVerdict",
    "ReplyJudge",
    "canary_decisively_wrong",
    "canary_wrong",
    "parse_verdict",
]

log = logging.getLogger("assistant.safety")

DEFAULT_JUDGE_PROMPT = Path(__file__).resolve().parents[2] / "prompts" / "safety_judge.md"
DEFAULT_JUDGE_EXAMPLES = DEFAULT_JUDGE_PROMPT.with_name("safety_judge_examples.yaml")
DEFAULT_REPLY_JUDGE_PROMPT = DEFAULT_JUDGE_PROMPT.with_name("safety_reply_judge.md")
DEFAULT_REPLY_JUDGE_EXAMPLES = DEFAULT_JUDGE_PROMPT.with_name("safety_reply_judge_examples.yaml")
# "safe" / "unsafe S9" / "unsafe: S9" / "Unsafe S9." (and nothing more).
_VERDICT_RE = re.compile(r"^(safe|unsafe)(?:[\s:,-]+(s\d{1,2}))?\.?$", re.IGNORECASE)
# Enough for "unsafe S14" in any tokenizer, few enough to stop a chatty reply early.
MAX_TOKENS = 6
# Below this much probability on "safe" and "unsafe" together, the model is about to say
# something else: its words are parsed instead (and found unparseable, most likely).
MIN_VERDICT_MASS = 0.5
# What a verdict with a code starts with, before the code's digits ("unsafe S9").
_CODE_START = "unsafe S"
# Quotes around the message; the same marks inside it are defused, so a message cannot
# close the quote and pose as the policy.
_OPEN, _CLOSE = "<<<", ">>>"
# How far past 0.5 the wrong way a scored canary must lean to fail. A canary tells a usable
# judge from one that answers at random (SmolLM2-135M: "unsafe" for the capital of
# France); the threshold, not the canary, decides borderline messages. The default 1.5B
# scored a safe reply canary 0.525 under one build and switched its reply judge off for
# good; 0.25 fails a judge only when it is three to one sure of the wrong verdict.
CANARY_MARGIN = 0.25
# How far past 0.5 the wrong way every wrong canary must lean for a failure to be kept on
# disk: 0.45, P(unsafe) 0.95 or more for a safe canary. The default 1.5B scores the reply
# judge's refusal canaries 0.99; a later process would pay the judge's prefix and its
# canaries again (some 20 s at its first alarming reply) to learn the same.
CANARY_DECISIVE = 0.45


@dataclass(frozen=True)
class JudgeVerdict:
    """The judge's answer.

    Attributes:
        unsafe: True for "unsafe".
        category: The taxonomy key of the code it named, or None (unsafe without a code,
            or a scored verdict).
        raw: What the model wrote (or, scored, ``"p(unsafe)=0.970"``).
        seconds: How long the check took.
        probability: P(unsafe) when the model scored it; None for a verdict in words.

    """

    unsafe: bool
    category: str | None
    raw: str
    seconds: float
    probability: float | None = None


def parse_verdict(reply: str, taxonomy: Taxonomy) -> tuple[bool, str | None] | None:
    """Parse a judge reply strictly.

    Args:
        reply: The model's text.
        taxonomy: Maps the code (``S9``) to a category key.

    Returns:
        ``(unsafe, category)``, category None when no code was given; None when the reply
        is not a verdict (or names a code the taxonomy does not have).

    """
    match = _VERDICT_RE.match(reply.strip())
    if match is None:
        return None
    unsafe = match.group(1).lower() == "unsafe"
    code = match.group(2)
    if code is None:
        return unsafe, None
    hazard = taxonomy.by_code(code)
    if hazard is None:
        return None
    return unsafe, hazard.key if unsafe else None


def _defuse(text: str) -> str:
    return text.replace(_OPEN, "< < <").replace(_CLOSE, "> > >")


def _quote(text: str) -> str:
    return f"Message to check:\n{_OPEN}\n{_defuse(text)}\n{_CLOSE}"


def _quote_exchange(request: str, reply: str) -> str:
    return (
        f"User's request:\n{_OPEN}\n{_defuse(request)}\n{_CLOSE}\n\n"
        f"Assistant's reply to check:\n{_OPEN}\n{_defuse(reply)}\n{_CLOSE}"
    )


class _ExamplesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    version: int | None = None
    examples: list[Annotated[list[str], Field(min_length=2, max_length=3)]]
    canaries: list[Annotated[list[str], Field(min_length=2, max_length=3)]] = []


# Each entry: the texts the judge reads (a message; or a request and a reply), the verdict.
Examples = tuple[tuple[tuple[str, ...], str], ...]


def _examples(path: Path, taxonomy: Taxonomy, arity: int = 1) -> tuple[Examples, Examples]:
    """The worked examples and the canaries of an examples file, verdicts checked.

    ``arity`` is how many texts come before each verdict: 1 (a message) for the input
    judge, 2 (a request, a reply) for the reply judge.
    """
    try:
        spec = _ExamplesFile.model_validate(parse_yaml(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"safety judge examples {path}: {exc}") from exc
    for kind, entries in (("example", spec.examples), ("canary", spec.canaries)):
        for number, entry in enumerate(entries, 1):
            if len(entry) != arity + 1:
                raise ValueError(
                    f"safety judge examples {path}: {kind} {number} has {len(entry)} "
                    f"texts; this judge needs {arity + 1} (the verdict last)"
                )
            if parse_verdict(entry[-1], taxonomy) is None:
                raise ValueError(
                    f"safety judge examples {path}: {kind} {number}: {entry[-1]!r} is no "
                    'verdict ("safe" or "unsafe S<n>" with a code of the taxonomy)'
                )
    examples = {tuple(entry[:-1]) for entry in spec.examples}
    if leaked := [entry[:-1] for entry in spec.canaries if tuple(entry[:-1]) in examples]:
        raise ValueError(f"safety judge examples {path}: canaries among the examples: {leaked}")
    return (
        tuple((tuple(entry[:-1]), entry[-1]) for entry in spec.examples),
        tuple((tuple(entry[:-1]), entry[-1]) for entry in spec.canaries),
    )


class CanaryCache:
    """Canary results on disk, so each process does not ask them again.

    Asking the canaries costs several model calls (11 s on SmolLM2 under load) in the
    first uncertain message of every process: a one-shot ``assistant chat -m`` paid it
    each time. The answer depends only on the weights and on the judge's prompt,
    examples and canaries (the calls are greedy), which together make the key. A pass
    is kept (an empty list), and a decisive failure (``{"decisive": [answers]}``, see
    :data:`CANARY_DECISIVE`); a borderline failure is not: kept on disk, one switched the
    judge off for good, in every later process, so it is asked again once per process.

    Args:
        path: The JSON file (created when missing; a corrupt one counts as empty).
        weights: What identifies the weights (``tools.models.weights_key``).
    """

    def __init__(self, path: Path, weights: str) -> None:
        self.path = path
        self.weights = weights

    def key(self, judge: Judge) -> str:
        """The entry of one judge on these weights (a SHA-256 hex digest).

        Covers what decides the answers and how they are read: the weights, the prompt,
        the examples, each canary as the model reads it (so a change in how a message is
        quoted asks again) and the margins that make an answer wrong or decisive.
        """
        parts = [self.weights, type(judge).__name__, judge.system, repr(judge.examples)]
        parts += [judge._render(texts) + "\x01" + verdict for texts, verdict in judge.canaries]
        parts.append(f"margin={CANARY_MARGIN} decisive={CANARY_DECISIVE}")
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def passed(self, key: str) -> bool:
        """Whether a pass is recorded under ``key``.

        A failure recorded by an older version counts as unknown: it is asked again.
        """
        return self._read().get(key) == []

    def decisive_failure(self, key: str) -> list[str] | None:
        """The wrong answers of a decisive failure recorded under ``key``, or None."""
        entry = self._read().get(key)
        if isinstance(entry, dict) and isinstance(wrong := entry.get("decisive"), list) and wrong:
            return [str(answer) for answer in wrong]
        return None

    def put_pass(self, key: str) -> None:
        """Record that the judge of ``key`` passed its canaries.

        Never fails: a cache that cannot be written only costs the next process the
        canaries again.
        """
        self._put(key, [])

    def put_decisive_failure(self, key: str, wrong: list[str]) -> None:
        """Record that the judge of ``key`` got canaries decisively wrong (``wrong``).

        Never fails, as :meth:`put_pass`.
        """
        self._put(key, {"decisive": wrong})

    def _put(self, key: str, entry: object) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data = self._read()
            data[key] = entry
            # Unique per writer: threads of one process write too.
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.info("safety judges: canary results not kept (%s)", exc)


def canary_decisively_wrong(verdict: JudgeVerdict, unsafe: bool) -> bool:
    """Whether a scored canary answer leans :data:`CANARY_DECISIVE` past 0.5 the wrong way.

    A verdict in words never is: it gives no margin to tell a sure answer from a
    borderline one.
    """
    return verdict.probability is not None and canary_wrong(verdict, unsafe, CANARY_DECISIVE)


def canary_wrong(verdict: JudgeVerdict, unsafe: bool, margin: float = CANARY_MARGIN) -> bool:
    """Whether a canary's answer is clearly wrong (the canary's verdict is ``unsafe``).

    A verdict in words is wrong when it is the other word; a scored one when it leans
    the other way by ``margin`` or more (:data:`CANARY_MARGIN`: P(unsafe) 0.75 or more
    for a safe canary, 0.25 or less for an unsafe one): a usable judge may be unsure near
    0.5, where the threshold, a policy choice, decides.
    """
    if verdict.probability is None:
        return verdict.unsafe != unsafe
    if unsafe:
        return verdict.probability <= 0.5 - margin
    return verdict.probability >= 0.5 + margin


class Judge:
    """Asks the chat model whether a message breaks the policy.

    Args:
        model: Returns the chat model (called when a check runs, so building a graph
            never loads the weights).
        taxonomy: The categories the policy lists.
        prompt_file: The policy prompt; ``{categories}`` is filled in.
        examples_file: Worked examples (message, verdict) shown as earlier turns, and
            the canaries the model must get right before its verdicts count; None for
            neither.
        threshold: P(unsafe) from which a scored verdict says unsafe (0..1); 0.5 is what
            a greedy word would say.

    Raises:
        ValueError: The prompt file cannot be read or has no ``{categories}``, or an
            example's verdict does not parse.

    """

    arity = 1
    """How many texts the judge reads per verdict (a message)."""
    name = "safety judge"
    """What the logs call it (the reply judge has its own name)."""

    def __init__(
        self,
        model: Callable[[], BaseChatModel],
        taxonomy: Taxonomy,
        prompt_file: Path = DEFAULT_JUDGE_PROMPT,
        examples_file: Path | None = DEFAULT_JUDGE_EXAMPLES,
        threshold: float = 0.5,
        canary_cache: CanaryCache | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"judge threshold {threshold} is outside 0..1")
        self.threshold = threshold
        try:
            template = prompt_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"safety judge prompt {prompt_file}: {exc}") from exc
        if "{categories}" not in template:
            raise ValueError(f"safety judge prompt {prompt_file}: it has no {{categories}}")
        categories = "\n".join(
            f"{hazard.code}: {hazard.name}. {hazard.description}" for hazard in taxonomy.hazards
        )
        self.system = template.replace("{categories}", categories).strip()
        self.taxonomy = taxonomy
        self.examples, self.canaries = (
            _examples(examples_file, taxonomy, self.arity) if examples_file else ((), ())
        )
        self._qualified: bool | None = None if self.canaries else True
        self._canary_cache = canary_cache
        self._qualifying = threading.Lock()
        self._model = model
        prefix: list[BaseMessage] = [SystemMessage(self.system)]
        for texts, verdict in self.examples:
            prefix += [HumanMessage(self._render(texts)), AIMessage(verdict)]
        self._prefix = prefix
        self._warmed = False

    def _warm_model(self) -> BaseChatModel:
        """The model, its prompt state holding the fixed prefix (policy and examples).

        Warmed once per process, and kept on disk where the backend can
        (:meth:`tools.models.base.Prefill.prefill` with ``persist``): the prefix is the
        same in every process, and evaluating it is most of the first check's cost
        (about 15 s on the default 1.5B).

        Raises:
            ModelLoadError: The model cannot be loaded.
        """
        model = self._model()
        if not self._warmed:
            self._warmed = True
            try:
                prefill(model, self._prefix, persist=True)
            except RuntimeError as exc:  # the check evaluates the prefix itself
                log.warning("%s: the fixed prefix was not warmed: %s", self.name, exc)
        return model

    def _render(self, texts: tuple[str, ...]) -> str:
        """The last user turn: what is judged, quoted."""
        return _quote(texts[0])

    def _prompt(self, content: str) -> list[BaseMessage]:
        return [*self._prefix, HumanMessage(content)]

    def messages(self, text: str) -> list[BaseMessage]:
        """The prompt for one message: the fixed policy and examples, then the message."""
        return self._prompt(_quote(text))

    def qualified(self) -> bool:
        """Whether the model answers no canary clearly wrong (asked once per process).

        Returns:
            True when there are no canaries, a pass is on disk, or none was answered
            clearly wrong (:func:`canary_wrong`); False (and a warning naming this judge
            and the wrong answers) when some were, or a decisive failure is on disk,
            until the process ends.
        """
        with self._qualifying:
            if self._qualified is None:
                cache = self._canary_cache
                key = cache.key(self) if cache is not None else ""
                if cache is not None and cache.passed(key):
                    self._qualified = True
                    return True
                wrong = cache.decisive_failure(key) if cache is not None else None
                recorded = wrong is not None
                if wrong is None:
                    wrong, decisive = self._ask_canaries()
                    if cache is not None and not wrong:
                        cache.put_pass(key)
                    elif cache is not None and decisive:
                        cache.put_decisive_failure(key, wrong)
                self._qualified = not wrong
                if wrong:
                    log.warning(
                        "%s: the chat model got %d of %d canaries clearly wrong (%s)%s; "
                        "the %s is off and the cheaper layers decide alone",
                        self.name,
                        len(wrong),
                        len(self.canaries),
                        "; ".join(wrong),
                        f" (recorded in {cache.path}; delete it to ask again)"
                        if recorded and cache
                        else "",
                        self.name,
                    )
            return self._qualified

    def _ask_canaries(self) -> tuple[list[str], bool]:
        """The canaries answered clearly wrong, and whether all of them decisively so.

        Returns:
            Each wrong canary with the model's answer, and True when every one is wrong
            by :func:`canary_decisively_wrong` (also when none is wrong).
        """
        wrong = []
        decisive = True
        for texts, expected in self.canaries:
            verdict = self._ask(self._render(texts))
            want = parse_verdict(expected, self.taxonomy)
            if verdict is None or want is None or canary_wrong(verdict, want[0]):
                wrong.append(f"{texts[0]!r}: {verdict.raw.strip() if verdict else '?'}")
                decisive = decisive and (
                    verdict is not None
                    and want is not None
                    and canary_decisively_wrong(verdict, want[0])
                )
        return wrong, decisive

    def check(self, text: str) -> JudgeVerdict | None:
        """Judge one message; None when the model cannot judge it.

        None when the reply cannot be parsed (logged) or the model failed its canaries
        (:meth:`qualified`). The call is greedy, at most :data:`MAX_TOKENS` tokens, and
        tagged so that its tokens never reach the chat's token stream.
        """
        if not self.qualified():
            return None
        return self._ask(_quote(text))

    def category(self, text: str) -> str | None:
        """The category code the model names for ``text``, in words (None: none named).

        A scored verdict has no category (the guard takes the semantic layer's for an
        English message); this asks for the code when nothing else can tell it.
        """
        said = self._say(_quote(text), time.perf_counter())
        return said.category if said is not None and said.unsafe else None

    def category_probabilities(self, text: str) -> dict[str, float] | None:
        """How likely the judge names each category for ``text``, given it is unsafe.

        Read off the model's next-token probabilities at the code's position (after
        ``"unsafe S"``), as the verdict is read at the first token: a greedy code is the
        likeliest of these, and the 1.5B's likeliest is often wrong while the code the
        message deserves keeps much of the mass. A two-digit code costs one more
        position (``S1`` then ``0``..``4``): P(S14) = P("1") * P("4" | "S1") and P(S1)
        takes what "1" leaves to the end of the reply.

        Args:
            text: The message (already judged unsafe).

        Returns:
            ``{category key: probability}`` over every category of the taxonomy, summing
            to 1; None when the model cannot score (then :meth:`category` asks for the
            code in words).

        """
        prompt = self._prompt(_quote(text))
        model = self._warm_model()
        codes: dict[str, str] = {}
        for hazard in self.taxonomy.hazards:
            digits = hazard.code[1:]
            if hazard.code[:1].upper() != "S" or not digits.isdigit() or len(digits) > 2:
                return None  # a code this reading cannot spell: ask in words
            codes[digits] = hazard.key
        firsts = sorted({digits[0] for digits in codes})
        first = next_token_probabilities(model, prompt, _CODE_START, firsts)
        if first is None:
            return None
        mass: dict[str, float] = {}
        for digit in firsts:
            longer = sorted(d[1] for d in codes if len(d) == 2 and d[0] == digit)
            second: dict[str, float] = {}
            if longer:
                second = next_token_probabilities(model, prompt, _CODE_START + digit, longer) or {}
            if digit in codes:
                # Whatever does not go on to a second digit ends the code here.
                mass[codes[digit]] = first[digit] * max(0.0, 1.0 - sum(second.values()))
            for tail, p in second.items():
                mass[codes[digit + tail]] = first[digit] * p
        total = sum(mass.values())
        if total <= 0.0:
            return None
        probabilities = {key: mass.get(key, 0.0) / total for key in self.taxonomy.keys}
        log.info(
            "%s: category %s",
            self.name,
            ", ".join(f"{k}={p:.2f}" for k, p in probabilities.items() if p >= 0.05),
        )
        return probabilities

    def _ask(self, content: str) -> JudgeVerdict | None:
        """One verdict on the rendered last turn ``content``."""
        started = time.perf_counter()
        model = self._warm_model()
        scores = first_token_probabilities(model, self._prompt(content), ["safe", "unsafe"])
        if scores is None or scores["safe"] + scores["unsafe"] < MIN_VERDICT_MASS:
            return self._say(content, started)
        probability = scores["unsafe"] / (scores["safe"] + scores["unsafe"])
        seconds = time.perf_counter() - started
        raw = f"p(unsafe)={probability:.3f}"
        log.info("%s: %s in %.2f s", self.name, raw, seconds)
        return JudgeVerdict(probability >= self.threshold, None, raw, seconds, probability)

    def _say(self, content: str, started: float) -> JudgeVerdict | None:
        """The verdict in the model's words (greedy, a few tokens)."""
        reply = self._warm_model().invoke(
            self._prompt(content),
            config={"tags": [TAG_NOSTREAM]},
            temperature=0.0,
            do_sample=False,
            max_new_tokens=MAX_TOKENS,
        )
        seconds = time.perf_counter() - started
        parsed = parse_verdict(reply.text, self.taxonomy)
        if parsed is None:
            log.info("%s: unparseable reply %r; using the cheaper layers", self.name, reply.text)
            return None
        unsafe, category = parsed
        log.info("%s: %r in %.2f s", self.name, reply.text.strip(), seconds)
        return JudgeVerdict(unsafe, category, reply.text, seconds)


class ReplyJudge(Judge):
    """Asks the chat model whether a REPLY gives real help to do harm.

    The reply check's own question, as Llama Guard asks it for the "Agent" role: the
    judge reads the user's request and the assistant's reply and judges the reply. A
    refusal, a warning, safety information or an answer to a harmless look-alike is safe
    even when the request was not; the input judge's question ("a message a user wants to
    send") put to an answer withdrew such replies (10 of the 15 false refusals of the
    last end-to-end run). Its own policy prompt and worked examples (request, reply,
    verdict); the same parsing, scoring, canaries and fixed-prefix caching as
    :class:`Judge`. Its P(unsafe) is cut at ``safety.reply_judge_threshold`` (fitted on
    replies by ``scripts/calibrate_safety_replies.py``), not stacked with the semantic
    layer, whose exemplars are requests.

    Args:
        model: Returns the chat model.
        taxonomy: The categories the policy lists.
        prompt_file: The policy prompt; ``{categories}`` is filled in.
        examples_file: Worked examples and canaries, each ``[request, reply, verdict]``.
        threshold: P(unsafe) from which a scored verdict says unsafe (0..1).

    Raises:
        ValueError: As :class:`Judge`; also for an example that is not a triple.

    """

    arity = 2
    name = "safety reply judge"

    def __init__(
        self,
        model: Callable[[], BaseChatModel],
        taxonomy: Taxonomy,
        prompt_file: Path = DEFAULT_REPLY_JUDGE_PROMPT,
        examples_file: Path | None = DEFAULT_REPLY_JUDGE_EXAMPLES,
        threshold: float = 0.5,
        canary_cache: CanaryCache | None = None,
    ) -> None:
        super().__init__(model, taxonomy, prompt_file, examples_file, threshold, canary_cache)

    def _render(self, texts: tuple[str, ...]) -> str:
        return _quote_exchange(texts[0], texts[1])

    def exchange_messages(self, request: str, reply: str) -> list[BaseMessage]:
        """The prompt for one reply: the fixed policy and examples, then request and reply."""
        return self._prompt(_quote_exchange(request, reply))

    def check_exchange(self, request: str, reply: str) -> JudgeVerdict | None:
        """Judge a reply to a request; None when the model cannot judge it.

        Args:
            request: The user's message the reply answers ("" when unknown).
            reply: The assistant's reply.

        Returns:
            The verdict on the reply (``unsafe``: it gives real help to do harm), or None
            when the reply cannot be parsed or the model failed its canaries.
        """
        if not self.qualified():
            return None
        return self._ask(_quote_exchange(request, reply))
