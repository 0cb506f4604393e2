"""The input check, layer by layer, cheapest first.

1. **Lexical** (:class:`~tools.guardrails.filter.SafetyFilter`, microseconds): harm
   patterns and threats (``prompts/safety.yaml``), the caller's strict terms, profanity
   and slurs at strict. A hit is final.
2. **Semantic** (:mod:`tools.guardrails.semantic`, one embedding): how likely the message
   is harmful and in which category, from the exemplars; and whether it is English.
3. **Classifier** (:mod:`tools.guardrails.classifiers`, ~1 ms): role-play and "no rules"
   wrappers (SecureVector Guardian's jailbreak and injection labels).
4. **Judge** (:mod:`tools.guardrails.judge`, the chat model): the policy prompt and a
   one-word verdict with a category. By default only for the messages layers 2-3 find
   uncertain: not English, a harm probability or a similarity to a harmful exemplar
   above the thresholds, or a wrapper. ``safety.judge = "all"`` judges every message.

A message that is not English is first translated into English by the chat model
(:mod:`tools.guardrails.translate`), and layers 1-4 read the translation as an English
message (the lexical layer reads the message as written too); without a translation to
trust, it is read as written and the judge alone carries it.

The reply check (:meth:`InputGuard.check_reply`) has its own judge
(:class:`~tools.guardrails.judge.ReplyJudge`): it reads the request and the reply and asks
whether the reply gives real help to do harm, with its own threshold
(``safety.reply_judge_threshold``).

A verdict names a category of the taxonomy; the policy (``safety.refuse``) says whether
the run's level refuses it. When the judge gives no verdict (off, or a reply that is not
one), the cheaper layers decide: the semantic layer refuses only a near-certain harm
probability (``safety.semantic_block``) that a harmful exemplar backs (a similarity of
``safety.uncertain_nearest`` or more): the regression alone extrapolates from a word far
from every exemplar ("hack together a prototype in Flask", 0.99 at 0.31).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from graph.settings import SafetyLevel, Settings
from tools.guardrails.calibration import Calibration, load_calibration
from tools.guardrails.classifiers import ClassifierError, InjectionClassifier, injection_classifier
from tools.guardrails.encodings import decoded_text, undisguised_text
from tools.guardrails.filter import SafetyFilter, SafetyVerdict
from tools.guardrails.judge import CanaryCache, Judge, JudgeVerdict, ReplyJudge
from tools.guardrails.semantic import SemanticLayer, SemanticScore, looks_english, shared_layer
from tools.guardrails.taxonomy import Policy
from tools.guardrails.translate import Translation, Translator
from tools.models.loader import weights_key
from tools.text import is_courtesy

__all__ = [
    "InputGuard",
    "Thresholds",
    "build_guard",
    "guard_for",
    "refusal_text",
    "refused_category",
]

log = logging.getLogger("assistant.safety")

# Why messages in another language go unjudged in this process, each warned once: the
# README promises such a message is the judge's to read, so an operator must see the gap.
_UNJUDGED_WARNED: set[str] = set()
_UNJUDGED_LOCK = threading.Lock()


def _judge_scores(verdict: JudgeVerdict) -> dict[str, Any]:
    """What a verdict's scores keep of the judge's answer.

    Its words, its seconds and, when the model scored it, its own P(unsafe) (``p_judge``,
    kept beside the stacked ``p_harmful``).
    """
    scores: dict[str, Any] = {
        "judge": verdict.raw.strip(),
        "judge_seconds": round(verdict.seconds, 3),
    }
    if verdict.probability is not None:
        scores["p_judge"] = round(verdict.probability, 3)
    return scores


@dataclass(frozen=True)
class Thresholds:
    """When the semantic layer is unsure (judge) or sure (refuse without a judge)."""

    uncertain_harm: float = 0.3
    uncertain_nearest: float = 0.35
    semantic_block: float = 0.97
    reply_judge: float = 0.8
    judge: float = 0.5
    """Stacked P(harmful) from which a scored judge verdict refuses (see calibration)."""
    reply_judge_threshold: float = 0.5
    """The reply judge's P(unsafe) from which a reply is withdrawn."""
    reply_suspect: float = 1.0
    """A reply to a request the input check put at this P(harmful) or more is judged
    whatever the reply's own score (1.0: only the reply's score triages)."""
    category_refuse: float = 0.3
    """A message found harmful is refused when this much of its category probability or
    more lies on categories the level refuses (see :func:`refused_category`)."""
    category_judge_weight: float = 0.5
    """The judge's share of an English message's category probability; the semantic
    layer's is the rest (a message in another language: the judge's alone)."""


@dataclass
class InputGuard:
    """Runs the layers on a message and returns one verdict.

    Args:
        safety: The lexical layer.
        policy: Which categories each level refuses.
        semantic: The semantic layer, or None.
        classifier: Returns the wrapper classifier, or None to skip it.
        judge: The model judge, or None.
        reply_judge: The reply check's judge (request and reply), or None.
        judge_mode: ``"off"``, ``"uncertain"`` or ``"all"``.
        thresholds: See :class:`Thresholds`.
        calibration: Stacks a scored judge verdict with the harm probability; None =
            the judge's own verdict decides.
        translator: Translates a message that is not English, which every layer then
            reads as English; None = read as written.

    """

    safety: SafetyFilter
    policy: Policy
    semantic: SemanticLayer | None = None
    classifier: Callable[[], InjectionClassifier] | None = None
    judge: Judge | None = None
    reply_judge: ReplyJudge | None = None
    judge_mode: str = "uncertain"
    thresholds: Thresholds = field(default_factory=Thresholds)
    calibration: Calibration | None = None
    translator: Translator | None = None
    _broken: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _disable(self, layer: str, exc: Exception) -> None:
        # A layer that cannot run (a missing package or model) is logged once and
        # skipped: the lexical layer and the judge still stand.
        with self._lock:
            if layer not in self._broken:
                self._broken.add(layer)
                log.warning("safety: the %s layer is off: %s", layer, exc)

    def _english(self, text: str) -> bool | None:
        """Whether ``text`` reads as English (:func:`looks_english`), None when unknown.

        Asked once per message read; the translation and the semantic layer get the
        answer passed on. None when the language identifier cannot run (logged once).
        """
        if "language" in self._broken:
            return None
        try:
            return looks_english(text)
        except Exception as exc:  # the language identifier is missing or broken
            self._disable("language", exc)
            return None

    def _note_unjudged(self, asked: bool) -> None:
        """Warn once per process and reason that messages in another language go unjudged.

        Such a message is read as written and untranslated; the semantic layer's scores
        mean little for it, so without the judge only the lexical patterns can refuse it.

        Args:
            asked: Whether the judge was asked about this message (then it has been
                qualified already, and :meth:`Judge.qualified` asks no canary again).
        """
        if self.judge_mode == "off":
            why = "safety.judge is off"
        elif self.judge is None:
            why = "the chat model cannot judge (the fake backend)"
        elif asked and not self.judge.qualified():
            why = "the judge failed its canaries"
        else:
            return
        with _UNJUDGED_LOCK:
            if why in _UNJUDGED_WARNED:
                return
            _UNJUDGED_WARNED.add(why)
        log.warning(
            "safety: a message that is not English goes unjudged and untranslated because "
            "%s; only the lexical patterns can refuse such messages in this process",
            why,
        )

    def _score(self, text: str, english: bool | None = None) -> SemanticScore | None:
        if self.semantic is None or "semantic" in self._broken:
            return None
        try:
            return self.semantic.score(text, english=english)
        except Exception as exc:  # the embedding model is missing or broken
            self._disable("semantic", exc)
            return None

    def _wrapped(self, text: str) -> bool:
        if self.classifier is None or "classifier" in self._broken:
            return False
        try:
            return self.classifier().check(text).flagged
        except (ClassifierError, Exception) as exc:
            self._disable("classifier", exc)
            return False

    def _judged(self, text: str) -> JudgeVerdict | None:
        if self.judge is None:
            return None
        try:
            return self.judge.check(text)
        except Exception as exc:  # a model error must not lose the cheaper verdict
            log.warning("safety judge failed, using the cheaper layers: %s", exc)
            return None

    def _refusal(
        self, level: SafetyLevel, category: str, layer: str, scores: dict[str, Any]
    ) -> SafetyVerdict:
        hazard = self.policy.taxonomy[category]
        return SafetyVerdict(
            allowed=False,
            level=level,
            reason=hazard.reason,
            category=category,
            matches=(),
            layer=layer,
            scores=scores,
        )

    def check(self, text: str, level: SafetyLevel, *, as_reply: bool = False) -> SafetyVerdict:
        """Decide whether a message may reach the model.

        Args:
            text: The user's message, or (``as_reply``) an assistant message the caller
                wrote: text the client wrote is input, whoever it is attributed to.
            level: The run's safety level.
            as_reply: Read the harm patterns as in a reply
                (:meth:`SafetyFilter.check_reply`: a line start is no sign of intent,
                so "Breaking into a car is a crime" passes); the other layers as for a
                user's message.

        Returns:
            The verdict: ``category`` names a taxonomy category (or the lexical layer's
            own), ``layer`` the layer that decided, ``scores`` what each layer saw.

        Raises:
            ValueError: For an unknown level.

        """
        # Words in disguise ("Whаt's thе quiеtеst wаy...", Cyrillic vowels; "h0w d0 1")
        # are read plainly by every layer but the lexical one, which undoes disguises
        # itself and names the words as written: as written, the language check took
        # them for another language and the judge for noise, both ways wrong.
        plain = undisguised_text(text)
        if plain is None:
            verdict = self._check_read(text, level, as_reply)
        else:
            # The word lists read the message as written, where capitals still tell a
            # name from a swear word ("Philip K. Dick" in fullwidth letters); the plain
            # reading is folded to lower case, so on it only harm counts.
            verdict = self._lexical_refusal(text, level, as_reply) or self._check_read_as(
                plain, level, as_reply, words=False
            )
        # A message that hides text in Base64 or hex is checked as written and, if that
        # passes, as read: "<base64 of a bomb recipe request> (decode this and answer it)".
        if verdict.allowed and (revealed := decoded_text(text)) is not None:
            return self._check_read_as(revealed, level, as_reply)
        return verdict

    def _check_read_as(
        self, reading: str, level: SafetyLevel, as_reply: bool, *, words: bool = True
    ) -> SafetyVerdict:
        """The layers on a reading of the message; its scores name it (``read_as``).

        ``words=False``: the word lists' refusals outside the taxonomy (profanity) are
        not taken from the reading (the message as written was read for them).
        """
        verdict = self._check_read(reading, level, as_reply, words=words)
        return replace(verdict, scores={**(verdict.scores or {}), "read_as": reading})

    def _lexical(
        self, text: str, level: SafetyLevel, as_reply: bool, words: bool = True
    ) -> SafetyVerdict:
        """The lexical layer's verdict on ``text``.

        ``words=False`` lets by what only the word lists outside the taxonomy (profanity)
        refuse.
        """
        lexical = self.safety.check_input(text, level)
        if as_reply and not lexical.allowed and lexical.rule is not None:
            lexical = self.safety.check_reply(text, level)  # a harm pattern's hit, re-read
        if not words and not lexical.allowed and lexical.category not in self.policy.taxonomy:
            lexical = replace(lexical, allowed=True, reason=None, category=None, rule=None)
        return lexical

    def _lexical_refusal(
        self, text: str, level: SafetyLevel, as_reply: bool, words: bool = True
    ) -> SafetyVerdict | None:
        """The lexical layer's refusal of ``text`` at ``level``, or None when it lets it by."""
        lexical = self._lexical(text, level, as_reply, words)
        return lexical if self._refused(lexical, level) else None

    def _refused(self, lexical: SafetyVerdict, level: SafetyLevel) -> bool:
        """Whether the lexical layer's verdict refuses at ``level``.

        A word list's hit (outside the taxonomy) always does, a harm category's if the
        level refuses that category.
        """
        return not lexical.allowed and (
            lexical.category not in self.policy.taxonomy
            or self.policy.refuses(lexical.category, level)
        )

    def _check_read(
        self, text: str, level: SafetyLevel, as_reply: bool = False, *, words: bool = True
    ) -> SafetyVerdict:
        """The layers on ``text`` and, when it is not English, on its English translation.

        A message that is not English is checked as written first (as without
        translation: the lexical layer and the judge alone); if that lets it through, its
        translation is checked as an English message, and either refusal refuses. Both,
        because the 1.5B translator fails both ways: it refuses to translate or answers
        the request instead ("I'm sorry, but I can't assist with that"), and it softens
        ("how many tablets to get rid of the pain"), so a translation alone let through
        5 of the 29 harmful requests the message as written refused (2026-11-30). The
        verdict's scores carry the translation (``translation``, ``translation_seconds``).
        ``words``: as for :meth:`_check_read_as`.
        """
        if self.judge_mode != "all" and is_courtesy(text):  # "all": every message, as asked
            return self._check_courtesy(text, level, as_reply, words)
        english = self._english(text)  # once: the translation and the layers share it
        translation = self._translation(text, english)
        as_written = self._check_text(text, level, as_reply, english, words)
        if translation is None or not as_written.allowed:
            return as_written
        # The translator returns only a translation that reads as English (it asked).
        verdict = self._check_text(translation.text, level, as_reply, english=True)
        scores = dict(verdict.scores or {})
        if as_written.scores and "p_harmful" in as_written.scores:
            scores["as_written_p_harmful"] = as_written.scores["p_harmful"]
        scores.update(
            translation=translation.text, translation_seconds=round(translation.seconds, 3)
        )
        return replace(verdict, scores=scores)

    def _check_courtesy(
        self, text: str, level: SafetyLevel, as_reply: bool, words: bool = True
    ) -> SafetyVerdict:
        """The verdict on a message of courtesy words only ("thanks!", "ok", "yes", "bye").

        Every word is from a closed list of harmless ones (:func:`~tools.text.is_courtesy`),
        so the meaning, the wrapper classifier, a translation and the judge have nothing
        to weigh: the lexical layer alone reads it (a caller's strict terms still apply).
        Not with ``safety.judge = "all"``, which judges every message.
        Without this, such messages scored as uncertain or read as another language and
        cost the model a judge call and a translation before the reply.
        """
        lexical = self._lexical(text, level, as_reply, words)
        if self._refused(lexical, level):
            return lexical
        allowed = replace(lexical, allowed=True, reason=None, category=None, rule=None)
        return replace(allowed, layer="lexical", scores={"courtesy": True})

    def _translation(self, text: str, english: bool | None) -> Translation | None:
        """The English translation of a message that is not English (None: read it as is).

        Only when a translator is configured, the message is known not to be English
        (``english``, from :meth:`_english`) and the judge, if any, passed its canaries:
        a model that cannot tell "What is the capital of France?" is safe is not trusted
        to translate either.
        """
        if self.translator is None or english is not False:
            return None
        if self.judge is not None and not self.judge.qualified():
            return None
        return self.translator.translate(text)

    def _check_text(
        self,
        text: str,
        level: SafetyLevel,
        as_reply: bool = False,
        english: bool | None = None,
        words: bool = True,
    ) -> SafetyVerdict:
        lexical = self._lexical(text, level, as_reply, words)
        # A harm hit in a non-literal frame ("rob the bank in Monopoly") goes on to the
        # judge; without one to ask, the words decide as for any hit.
        if self._refused(lexical, level):
            if lexical.framed and self._can_judge():
                return self._judge_framed(text, lexical, english)
            return lexical
        score = self._score(text, english)
        scores: dict[str, Any] = {}
        uncertain = score is None
        if score is not None:
            scores.update(
                harm=round(score.harm, 3),
                category=score.category,
                nearest=round(score.nearest, 3),
                margin=round(score.margin, 3),
                english=score.english,
            )
            uncertain = (
                not score.english
                or score.harm >= self.thresholds.uncertain_harm
                or score.nearest >= self.thresholds.uncertain_nearest
            )
        if not uncertain and self._wrapped(text):
            scores["wrapper"] = True
            uncertain = True
        allowed = replace(lexical, allowed=True, reason=None, category=None, rule=None)
        asked = self.judge_mode == "all" or (self.judge_mode == "uncertain" and uncertain)
        if asked:
            verdict = self._judged(text)
            if verdict is not None:
                scores.update(_judge_scores(verdict))
                if not self._unsafe(verdict, score, scores):
                    return replace(allowed, layer="judge", scores=scores)
                categories = self._categories(text, verdict, score)
                category = refused_category(
                    categories, self.policy, level, self.thresholds.category_refuse
                )
                if categories:
                    scores["refused_mass"] = round(
                        sum(p for c, p in categories.items() if self.policy.refuses(c, level)), 3
                    )
                if category is not None:
                    return self._refusal(level, category, "judge", scores)
                return replace(allowed, layer="judge", scores=scores)
        if english is False:
            self._note_unjudged(asked)
        if (
            score is not None
            and score.english
            and score.harm >= self.thresholds.semantic_block
            # A near-certain probability is a refusal only near a harmful exemplar: far
            # from all of them the regression reads one word ("hack", "steal"), not what
            # is asked ("hack together a prototype in Flask": 0.99 at a similarity of 0.31).
            and score.nearest >= self.thresholds.uncertain_nearest
            and self.policy.refuses(score.category, level)
        ):
            return self._refusal(level, score.category, "semantic", scores)
        return replace(allowed, layer="semantic" if score else None, scores=scores or None)

    def _can_judge(self) -> bool:
        """Whether a judge would be asked about a message (it may still give no verdict)."""
        return self.judge is not None and self.judge_mode != "off"

    def _judge_framed(
        self, text: str, lexical: SafetyVerdict, english: bool | None = None
    ) -> SafetyVerdict:
        """The verdict on a harm hit in a non-literal frame: the judge's, stacked as usual.

        Safe: the message is answered; unsafe, or no verdict: the lexical refusal stands
        (its category is the pattern's, refused at every level).
        """
        score = self._score(text, english)
        scores: dict[str, Any] = {"framed": True}
        if score is not None:
            scores.update(harm=round(score.harm, 3), category=score.category)
        verdict = self._judged(text)
        if verdict is None:
            return replace(lexical, scores=scores)
        scores.update(_judge_scores(verdict))
        if self._unsafe(verdict, score, scores):
            return replace(lexical, layer="judge", scores=scores)
        return SafetyVerdict(
            allowed=True,
            level=lexical.level,
            reason=None,
            category=None,
            matches=(),
            layer="judge",
            scores=scores,
        )

    def _categories(
        self, text: str, verdict: JudgeVerdict, score: SemanticScore | None
    ) -> dict[str, float]:
        """The category probabilities of a message found harmful (empty: none known).

        The judge's: its probabilities at the code's position, or the code it writes when
        the model cannot score. For an English message they are mixed with the semantic
        layer's (``category_judge_weight``), which read the category right more often
        (README "Safety") but cannot tell a look-alike's category from the real one's;
        for another language the semantic layer's category means little and the judge's
        stand alone.
        """
        english = score is not None and score.english
        judged: dict[str, float] = {}
        if verdict.category is not None:
            judged = {verdict.category: 1.0}
        elif self.judge is not None:
            try:
                judged = self.judge.category_probabilities(text) or {}
                # A code in words costs a generation: asked only when nothing else can
                # tell the category (a message the semantic layer cannot read).
                if not judged and not english and (code := self.judge.category(text)):
                    judged = {code: 1.0}
            except Exception as exc:  # a model error: the semantic layer's category stands
                log.warning("safety judge could not name a category: %s", exc)
        semantic: dict[str, float] = {}
        if score is not None:
            semantic = dict(score.categories) or {score.category: 1.0}
        if not english and judged:
            return judged
        if not judged or not semantic:
            return judged or semantic
        weight = self.thresholds.category_judge_weight
        return {
            key: (1 - weight) * semantic.get(key, 0.0) + weight * judged.get(key, 0.0)
            for key in {**semantic, **judged}
        }

    def _unsafe(
        self, verdict: JudgeVerdict, score: SemanticScore | None, scores: dict[str, Any]
    ) -> bool:
        """The judge's verdict, stacked with the harm probability when it was scored."""
        if verdict.probability is None or self.calibration is None:
            return verdict.unsafe
        if score is not None and score.english:
            harmful = self.calibration.probability(verdict.probability, score.harm, score.margin)
        else:
            harmful = self.calibration.probability(verdict.probability, None)
        scores["p_harmful"] = round(harmful, 3)
        return harmful >= self.thresholds.judge

    def check_reply(
        self, request: str, reply: str, level: SafetyLevel, request_harmful: float | None = None
    ) -> SafetyVerdict:
        """Decide whether a reply may be kept (``allowed``) or must be withdrawn.

        Cheap unless the reply looks harmful: the patterns marked for replies run on it
        (threats: "I will kill you"; see :meth:`SafetyFilter.check_reply`), then the
        semantic layer; only a reply it scores at ``reply_judge`` or more, or a reply to a request
        the input check found suspect (stacked P(harmful) ``reply_suspect`` or more, yet
        let through), goes to the reply judge, which reads the request and the reply and
        is asked whether the reply gives real help to do harm (a refusal or safety
        information does not). Its P(unsafe) at
        ``reply_judge_threshold`` or more withdraws the reply (a verdict in words: its
        word); without a verdict the reply is kept. Profanity and strict terms do not
        withdraw a reply (profanity is masked instead).

        Args:
            request: The user's message the reply answers.
            reply: The model's reply (already masked).
            level: The run's safety level.
            request_harmful: The input check's stacked P(harmful) of the request (its
                ``scores["p_harmful"]``), None when it was not judged with scores.

        Returns:
            The verdict on the reply; not allowed means: replace it by the refusal.

        """
        lexical = self.safety.check_reply(reply, level)
        if not lexical.allowed and self.policy.refuses(lexical.category, level):
            return lexical
        keep = SafetyVerdict(allowed=True, level=level, reason=None, category=None, matches=())
        score = self._score(reply)
        suspect = request_harmful is not None and request_harmful >= self.thresholds.reply_suspect
        looks_harmful = (
            score is not None and score.english and score.harm >= self.thresholds.reply_judge
        )
        if score is None or not (looks_harmful or suspect):
            return keep
        scores: dict[str, Any] = {"harm": round(score.harm, 3), "category": score.category}
        if suspect:
            scores["request_harmful"] = round(request_harmful or 0.0, 3)
        verdict = self._judged_reply(request, reply) if self.judge_mode != "off" else None
        if verdict is not None:
            scores.update(_judge_scores(verdict))
            unsafe = (
                verdict.unsafe
                if verdict.probability is None
                else verdict.probability >= self.thresholds.reply_judge_threshold
            )
            category = verdict.category or score.category
            if unsafe and self.policy.refuses(category, level):
                return self._refusal(level, category, "judge", scores)
            return replace(keep, layer="judge", scores=scores)
        # Without a verdict the score alone never withdraws a reply: the exemplars are
        # requests, and answers such as "That is a bad idea." score 0.99 against them.
        return replace(keep, layer="semantic", scores=scores)

    def _judged_reply(self, request: str, reply: str) -> JudgeVerdict | None:
        if self.reply_judge is None:
            return None
        try:
            return self.reply_judge.check_exchange(request, reply)
        except Exception as exc:  # a model error keeps the reply, as no verdict does
            log.warning("safety reply judge failed, keeping the reply: %s", exc)
            return None


def refused_category(
    categories: Mapping[str, float], policy: Policy, level: SafetyLevel, threshold: float
) -> str | None:
    """The category to refuse a harmful message for, or None when the level allows it.

    The category decides only whether the level refuses, so what counts is how much
    probability the categories it refuses hold together, not which one is likeliest: a
    Polish request to kill someone to which the judge's likeliest code is S5
    (defamation, answered at relaxed) with 0.4 and S1 with 0.35 is refused. The message
    is allowed only when the categories the level answers hold more than
    ``1 - threshold`` (a threshold below 0.5: a wrong refusal of a defamation request at
    relaxed costs less than an answered request to kill).

    Args:
        categories: Probability per category key (summing to about 1); empty: none known.
        policy: Which categories each level refuses.
        level: The run's level.
        threshold: The refused mass (0..1) from which the message is refused.

    Returns:
        The refused category with the most probability, when the refused ones hold
        ``threshold`` or more; None otherwise (and for empty ``categories``).
    """
    refused = {c: p for c, p in categories.items() if policy.refuses(c, level)}
    if not refused or sum(refused.values()) < threshold:
        return None
    return max(refused, key=lambda c: refused[c])


def refusal_text(template: str, safety: SafetyFilter, verdict: SafetyVerdict) -> str:
    """The reply to a refused message or a withdrawn reply.

    The configured template with ``{reason}`` and ``{level}``; at strict and moderate the
    reason is masked, since it may name the words that were found.
    """
    level = verdict.level
    text = template.format(reason=verdict.reason or "not allowed", level=level)
    if level in ("strict", "moderate"):
        text = safety.mask_output(text, level).text
    return text


def build_guard(
    settings: Settings,
    safety: SafetyFilter,
    model: Callable[[], BaseChatModel],
    can_judge: bool = True,
) -> InputGuard:
    """The input check configured from settings (the layers load on first use).

    Args:
        settings: The ``safety`` section says which layers run and the policy; the
            prompts folder holds the exemplars and the judge prompt.
        safety: The lexical layer (shared with the output masking).
        model: Returns the chat model the judge asks.
        can_judge: False when the chat model cannot judge at all (the fake backend's
            canned reply): no judge and no translation, whatever ``safety.judge`` says.

    Raises:
        ValueError: The policy names an unknown category, or a data file is invalid.

    """
    cfg = settings.safety
    directory = settings.prompts.directory
    taxonomy = safety.taxonomy
    policy = Policy.build(cfg.refuse.model_dump(), taxonomy)
    semantic = None
    if cfg.semantic:
        semantic = shared_layer(_data_file(directory, "safety_exemplars.yaml"), settings.cache_dir)
    judge = reply_judge = translator = None
    if cfg.judge != "off" and can_judge:
        weights = weights_key(settings)
        canaries = (
            None
            if weights is None
            else CanaryCache(settings.cache_dir / "guardrails" / "judge_canaries.json", weights)
        )
        judge = Judge(
            model,
            taxonomy,
            _data_file(directory, "safety_judge.md"),
            _data_file(directory, "safety_judge_examples.yaml"),
            canary_cache=canaries,
        )
        reply_judge = ReplyJudge(
            model,
            taxonomy,
            _data_file(directory, "safety_reply_judge.md"),
            _data_file(directory, "safety_reply_judge_examples.yaml"),
            canary_cache=canaries,
        )
        if cfg.translate:
            translator = Translator(
                model,
                _data_file(directory, "safety_translate.md"),
                _data_file(directory, "safety_translate_examples.yaml"),
            )
    return InputGuard(
        safety=safety,
        policy=policy,
        semantic=semantic,
        classifier=injection_classifier,
        judge=judge,
        reply_judge=reply_judge,
        judge_mode=cfg.judge,
        thresholds=Thresholds(
            cfg.uncertain_harm,
            cfg.uncertain_nearest,
            cfg.semantic_block,
            cfg.reply_judge,
            cfg.judge_threshold,
            cfg.reply_judge_threshold,
            cfg.reply_suspect,
        ),
        calibration=load_calibration(_data_file(directory, "safety_calibration.yaml")),
        translator=translator,
    )


_GUARDS: dict[int, InputGuard] = {}
_GUARDS_LOCK = threading.Lock()


def guard_for(
    settings: Settings,
    safety: SafetyFilter,
    model: Callable[[], BaseChatModel],
    can_judge: bool = True,
) -> InputGuard:
    """The guard of one graph's collaborators, built once (both safety nodes share it).

    Keyed by the lexical filter, which each graph's dependencies build once.
    """
    with _GUARDS_LOCK:
        guard = _GUARDS.get(id(safety))
        if guard is None or guard.safety is not safety:
            guard = build_guard(settings, safety, model, can_judge)
            _GUARDS[id(safety)] = guard
        return guard


def _data_file(directory: Path, name: str) -> Path:
    # A prompts folder of one's own may leave out the safety data: the shipped one counts.
    path = directory / name
    return path if path.is_file() else Path(__file__).resolve().parents[2] / "prompts" / name
