"""The semantic layer of the input check: what a message means, from its embedding.

The message is embedded with all-MiniLM-L6-v2 (:func:`tools.models.embeddings.get_embeddings`,
the model retrieval already loads) and compared with the exemplars of
``prompts/safety_exemplars.yaml``: short harmful requests per hazard category and benign
ones, many of them look-alikes. Two logistic regressions (scikit-learn) are trained on
the exemplar vectors when the layer is first used: one says how likely the message is
harmful at all, the other which category it would be. The layer also reports the
similarity to the nearest harmful exemplar, and whether the message is English at all
(the embedding model reads English only).

Measured on the development sets (README "Safety"), this layer cannot tell a harmful
request from its look-alike well enough to refuse on its own; its job is triage: it
sends the messages that may be harmful (and those it cannot read) to the model judge,
and lets the rest, most ordinary messages, through at the cost of one embedding.

The exemplar vectors are cached in ``<cache_dir>/guardrails/`` under a hash of the file's
content and the model, so a start-up embeds them once per change of the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import unicodedata
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from tools.guardrails.filter import plain_text
from tools.text import describe_validation_error, english_word_frequencies, parse_yaml, zipf

__all__ = [
    "DEFAULT_EXEMPLARS_FILE",
    "Exemplars",
    "SemanticLayer",
    "SemanticScore",
    "looks_english",
]

log = logging.getLogger("assistant.safety")

DEFAULT_EXEMPLARS_FILE = Path(__file__).resolve().parents[2] / "prompts" / "safety_exemplars.yaml"

# Regularisation of the two regressions (inverse strength), chosen on the development set:
# C=8 sent every harmful dev request to the judge with the fewest ordinary messages.
_C_HARM = 8.0
_C_CATEGORY = 8.0
# Message vectors kept for repeated texts (a retried turn, the eval harness).
_CACHE_SIZE = 256

Embed = Callable[[Sequence[str]], Sequence[Sequence[float]]]


# --- exemplars ---------------------------------------------------------------------------

_Text = Annotated[str, StringConstraints(pattern=r"\S")]


class _ExemplarsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    version: int | None = None
    categories: dict[str, Annotated[list[_Text], Field(min_length=3)]]
    benign: Annotated[list[_Text], Field(min_length=10)]


def _where(location: tuple[int | str, ...]) -> tuple[str, str]:
    match location:
        case ("categories", key):
            return f"category {key!r}", "a list of at least 3 requests"
        case ("benign",):
            return "'benign'", "a list of at least 10 requests"
        case ("categories", key, int(number)) | ("categories", key, number):
            return f"category {key!r}, exemplar {number}", "a non-empty string"
        case ("benign", number):
            return f"benign exemplar {number}", "a non-empty string"
    return "the file", "a mapping with 'categories' and 'benign'"


@dataclass(frozen=True)
class Exemplars:
    """The exemplar texts: per hazard category, and benign ones."""

    categories: dict[str, tuple[str, ...]]
    benign: tuple[str, ...]
    digest: str  # of the file's content: the key of the cached vectors

    @classmethod
    def load(cls, path: Path) -> Exemplars:
        """Read and validate an exemplars file.

        Raises:
            ValueError: The file is missing, not YAML, or breaks the schema (a category
                with fewer than 3 exemplars, fewer than 10 benign ones, an empty text).

        """
        try:
            raw = path.read_bytes()
            spec = _ExemplarsFile.model_validate(parse_yaml(raw.decode("utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"safety exemplars {path}: {exc}") from exc
        except ValidationError as exc:
            problem = describe_validation_error(exc, _where)
            raise ValueError(f"safety exemplars {path}: {problem}") from None
        return cls(
            {key: tuple(texts) for key, texts in spec.categories.items()},
            tuple(spec.benign),
            hashlib.sha256(raw).hexdigest()[:16],
        )

    def labelled(self) -> tuple[list[str], list[str]]:
        """Every exemplar and its label (a category key, or ``"benign"``)."""
        texts: list[str] = []
        labels: list[str] = []
        for key, items in self.categories.items():
            texts.extend(items)
            labels.extend([key] * len(items))
        texts.extend(self.benign)
        labels.extend(["benign"] * len(self.benign))
        return texts, labels


# --- language ----------------------------------------------------------------------------


# py3langid (BSD-3-Clause; langid.py's naive Bayes over byte n-grams, 97 languages, the
# model inside the 4.5 MB wheel, offline) tells the language. Chosen over langdetect
# (38 ms a call, random unless seeded, needs six) and lingua-language-detector (96 MB,
# about 1 s a call here): 0.6 ms a call. Its top language alone misreads short English
# ("ok" -> Serbian, "Who is Angela Merkel?" -> Xhosa: 9 of 25 short English messages);
# English within a factor _ENGLISH_RATIO of the top language misread 1 of 25 ("recipe
# for crème brûlée pls") and none of 43 short messages in 25 other languages, whose
# English probability was at most a tenth of their top one ("Ciao, come stai?": 0.09).
_ENGLISH_RATIO = 0.2
# Below this many letters py3langid cannot tell English at all: on "yes", "lol", "idk",
# "tbh idk", "msg 1" its top probability is 0.03-0.25 over 140 languages, spread over
# Walloon, Sesotho, Volapuk, Scottish Gaelic; and it is as unsure of "hola", "te odio" or
# "mata a tu padre" (top 0.09). There, the words decide (:func:`_short_english`). Every
# Latin-script `language`-tagged case of the safety corpora has more letters than this.
_SHORT_LETTERS = 24
# The words of English: whole words among the _COMMON_RANK most frequent entries of the
# embedding model's own WordPiece vocabulary (all-MiniLM-L6-v2, uncased BERT: English
# Wikipedia and books, ids in order of frequency, shipped offline with the model), and
# lexicon/chat_words.txt. The vocabulary is not English only: German "und" (6151) and
# "der" (4315), Spanish "como" (18609), "mata" (22640), "padre" (28612) are whole words,
# from names and quotations in English text. Below 16,000 are the function words those
# share with English ("te", "tu", "no", "mi") and few content words of another language;
# "mata a tu padre" then holds two words that are not common English, and is no English.
_COMMON_RANK = 16000
# py3langid this sure of another language outweighs a message of common English words.
_CONFIDENT = 0.5
# How much each language uses a word, from wordfreq's lists (Apache-2.0 code; CC-BY-SA 4.0
# lists from Wikipedia, subtitles, news, books and web text, offline in the wheel; Speer,
# "wordfreq", Zenodo 10.5281/zenodo.7199437), on the Zipf scale (log10 of uses per
# billion words). A word is foreign when another language uses it 100 times more
# (_FOREIGN_MARGIN): "pistola" Italian 4.3 against English 1.5, "mato" 4.8 / 2.5, "hola"
# 5.3 / 3.1, "te" 7.0 / 4.1; loanwords are not ("croissant" 4.1 / 2.8, "fiesta" 5.0 / 3.3),
# nor names and jargon, rare everywhere ("kubectl") or as common in English ("merkel").
# It is English when not foreign and English uses it at least once per million words
# (_ENGLISH_ZIPF: "recipe", "optimize", "gotcha"). English's large list (0.1 s to load,
# down to Zipf 1) and the small lists of the other Latin-script languages (Zipf 3 and
# up): 0.4 s and about 190 MB, loaded only when a short message has a rare word.
_FOREIGN_MARGIN = 2.0
_ENGLISH_ZIPF = 3.0
# wordfreq's languages written in Latin letters, English aside.
_LATIN_LANGUAGES = (
    *("ca", "cs", "da", "de", "es", "fi", "fil", "fr", "hu", "id", "is", "it", "lt"),
    *("lv", "ms", "nb", "nl", "pl", "pt", "ro", "sh", "sk", "sl", "sv", "tr", "vi"),
)
_CHAT_WORDS_FILE = Path(__file__).resolve().parent / "lexicon" / "chat_words.txt"
_WORD_RE = re.compile(r"[^\W\d_]+")
_identifier: Any = None
_identifier_lock = threading.Lock()
_vocabulary: dict[str, int] | None = None
_vocabulary_lock = threading.Lock()
_frequencies: list[Mapping[str, float]] | None = None
_frequencies_lock = threading.Lock()


def _language_ranks(text: str) -> list[tuple[str, float]]:
    """``(language, probability)`` pairs, most likely first (the model loads once)."""
    global _identifier
    with _identifier_lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        ranks: list[tuple[str, float]] = _identifier.rank(text)
    return ranks


def _english_words() -> dict[str, int]:
    """English word -> frequency rank: the embedding vocabulary's words, and chat words.

    Chat words (lexicon/chat_words.txt: "lol", "idk", "tbh", "thx") rank 0: written English
    has none of them, and they are what short messages are made of. Empty when the
    embedding model or the list cannot be read (logged once): then py3langid alone
    decides, as before.
    """
    global _vocabulary
    with _vocabulary_lock:
        if _vocabulary is None:
            words: dict[str, int] = {}
            try:
                from tools.models.embeddings import TOKENIZER_LOCK, get_tokenizer

                tokenizer = get_tokenizer()
                with TOKENIZER_LOCK:
                    vocabulary: dict[str, int] = tokenizer.get_vocab()
                words = {w: i for w, i in vocabulary.items() if w.isascii() and w.isalpha()}
                lines = _CHAT_WORDS_FILE.read_text(encoding="utf-8").splitlines()
                chat = (line.split("#", 1)[0].strip() for line in lines)
                words.update(dict.fromkeys(filter(None, chat), 0))
            except Exception as exc:  # a missing model or list: the ratio alone, as before
                log.warning("short messages are read by py3langid alone: %s", exc)
                words = {}
            _vocabulary = words
        return _vocabulary


def _word_lists() -> list[Mapping[str, float]]:
    """The word lists: English's large one first, then the small ones of the others.

    Each maps a word to its frequency (uses per word of text) in one language, English
    then :data:`_LATIN_LANGUAGES`. Empty when wordfreq cannot be read (logged once): then
    the words are read as before it.
    """
    global _frequencies
    with _frequencies_lock:
        if _frequencies is None:
            try:
                from wordfreq import get_frequency_dict

                # English's large list: its rare words ("sudoku", "croissant", Zipf
                # 2.6-2.8) are below the small lists' floor, and would all read foreign.
                english = english_word_frequencies()
                if not english:
                    raise LookupError("no English word list")
                _frequencies = [
                    english,
                    *(get_frequency_dict(code, wordlist="small") for code in _LATIN_LANGUAGES),
                ]
            except Exception as exc:  # a broken install: py3langid alone, as before
                log.warning("word lists unavailable, py3langid alone decides: %s", exc)
                _frequencies = []
        return _frequencies


def _word_language(word: str, common: bool) -> Literal["english", "foreign", "either"] | None:
    """Whose word ``word`` is, by how much each language uses it (None: no word lists).

    ``foreign`` when some :data:`_LATIN_LANGUAGES` list gives it a Zipf frequency at least
    :data:`_FOREIGN_MARGIN` above English's ("pistola", "mato", "te"); else ``english``
    when it is ``common`` (among the embedding vocabulary's common words) or English uses
    it at least :data:`_ENGLISH_ZIPF` ("recipe"); else ``either`` (names, jargon).
    """
    lists = _word_lists()
    if not lists:
        return None
    english_list, *others = lists
    english = zipf(english_list.get(word, 0.0))
    best = zipf(max(other.get(word, 0.0) for other in others))
    if best > 0 and best >= english + _FOREIGN_MARGIN:
        return "foreign"
    if common or english >= _ENGLISH_ZIPF:
        return "english"
    return "either"


def _is_latin(char: str) -> bool:
    return char.isascii() or unicodedata.name(char, "").startswith("LATIN")


def _short_english(text: str, ranks: list[tuple[str, float]], near_tie: bool) -> bool:
    """Whether a short message in Latin letters is English, by its words.

    Single letters say nothing ("a", "o", "y", "e", "i" are words in many languages).
    English when every word is common English ("yes", "tbh idk", "msg 1", "awesome"),
    unless py3langid is sure of another language (:data:`_CONFIDENT`). Otherwise each
    word is weighed (:func:`_word_language`): foreign when another language uses it far
    more ("pistola", "mato", also "te"), English when it is not and English uses it
    often, either when it is rare everywhere (names, jargon: "kubectl", "Zelensky"). English
    when the English words outnumber the foreign ones ("explain kubectl rollout",
    "recipe for tiramisu"), not English otherwise ("te mato", "pistola", "come rubare":
    a tie reads as another language). When no word is either, or without the word lists:
    not English when most words, and at least two, are no English words at all, else
    py3langid's near tie decides, as for longer text.
    """
    known = _english_words()
    if not known:  # no vocabulary to read words with
        return near_tie
    words = [w for w in _WORD_RE.findall(text.lower()) if len(w) > 1]
    if not words:
        return True
    if all(known.get(w, _COMMON_RANK) < _COMMON_RANK for w in words):
        language, top = ranks[0]
        return language == "en" or top < _CONFIDENT
    readings = [_word_language(w, known.get(w, _COMMON_RANK) < _COMMON_RANK) for w in words]
    if None not in readings:  # the word lists could be read
        foreign, english = readings.count("foreign"), readings.count("english")
        if foreign or english:
            # A tie reads as another language: checked that way, the message is also
            # translated and read as English; read as English, a threat may pass unread.
            return english > foreign
    unknown = sum(w not in known for w in words)
    if unknown >= 2 and 2 * unknown > len(words):
        return False
    return near_tie


def looks_english(text: str) -> bool:
    """Tell whether a message reads as English (the only language the embeddings know).

    English when py3langid gives English at least :data:`_ENGLISH_RATIO` times the
    probability of the most likely language: short English is often near-tied with
    some other language, a message in another language puts English far below its own.
    A short message in Latin letters (fewer than :data:`_SHORT_LETTERS`), on which
    py3langid is barely better than chance, is read by its words
    (:func:`_short_english`). A message without letters counts as English (nothing to
    read).
    """
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return True
    ranks = _language_ranks(text)
    top = ranks[0][1]
    english = dict(ranks).get("en", 0.0)
    near_tie = english >= _ENGLISH_RATIO * top
    if len(letters) >= _SHORT_LETTERS or not all(map(_is_latin, letters)):
        return near_tie
    return _short_english(text, ranks, near_tie)


# --- the layer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SemanticScore:
    """What the semantic layer makes of one message.

    Attributes:
        harm: Probability (0-1) that the message is harmful at all.
        category: The hazard category it is closest to, if harmful.
        nearest: Cosine similarity to the nearest harmful exemplar (-1 to 1).
        english: False when the message is not English: the scores mean little then.
        nearest_benign: Cosine similarity to the nearest benign exemplar (-1 to 1).
        categories: The probability of each hazard category (summing to 1), of which
            ``category`` is the likeliest; empty when not known.

    """

    harm: float
    category: str
    nearest: float
    english: bool
    nearest_benign: float = -1.0
    categories: Mapping[str, float] = field(default_factory=dict)

    @property
    def margin(self) -> float:
        """Nearest harmful minus nearest benign similarity (-2 to 2): a kNN feature.

        Positive when the closest exemplar is a harmful one; it tells a request from its
        look-alike where the regression, which weighs all exemplars, is less sure.
        """
        return self.nearest - self.nearest_benign


@dataclass(frozen=True)
class Linear:
    """A fitted logistic regression as plain arrays: what ``predict_proba`` computes.

    scikit-learn's binary model gives ``sigmoid(x @ coef.T + intercept)`` for
    ``classes[1]``; its multinomial one the softmax of ``x @ coef.T + intercept``
    (scikit-learn user guide, "Logistic regression"). Kept as arrays, it is saved with
    numpy and used without importing scikit-learn (0.5-1 s of a cold start).

    Attributes:
        coef: ``(1, d)`` for two classes, else ``(k, d)``.
        intercept: ``(1,)`` or ``(k,)``.
        classes: ``(k,)`` class labels, in the order of the probabilities.
    """

    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray

    @classmethod
    def of(cls, model: Any) -> Linear:
        """The arrays of a fitted scikit-learn ``LogisticRegression``."""
        return cls(
            np.asarray(model.coef_), np.asarray(model.intercept_), np.asarray(model.classes_)
        )

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Class probabilities: ``(n, k)`` for ``(n, d)`` vectors."""
        scores = np.atleast_2d(vectors) @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        probabilities: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
        return probabilities


_MODEL_ARRAYS = ("coef", "intercept", "classes")


_Models = tuple[Linear, Linear, np.ndarray, np.ndarray]
"""The harm and category regressions, the harmful and the benign exemplar vectors."""


def _save_models(path: Path, models: _Models) -> None:
    """Keep the fitted layer at ``path`` (whole file, then renamed); failures are logged."""
    harm, category, harmful, benign = models
    arrays = {f"harm_{n}": getattr(harm, n) for n in _MODEL_ARRAYS}
    arrays |= {f"category_{n}": getattr(category, n) for n in _MODEL_ARRAYS}
    partial = path.with_suffix(f".{os.getpid()}.part.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(partial, harmful=harmful, benign=benign, **arrays)
        partial.replace(path)
    except OSError as exc:  # a read-only cache costs time, not correctness
        log.info("cannot keep the semantic layer in %s: %s", path, exc)
        partial.unlink(missing_ok=True)


def _load_models(path: Path) -> _Models | None:
    try:
        with np.load(path, allow_pickle=False) as saved:
            harm = Linear(*(saved[f"harm_{n}"] for n in _MODEL_ARRAYS))
            category = Linear(*(saved[f"category_{n}"] for n in _MODEL_ARRAYS))
            return harm, category, saved["harmful"], saved["benign"]
    except FileNotFoundError:
        return None
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        log.info("refitting the semantic layer, cannot read %s: %s", path, exc)
        return None


class SemanticLayer:
    """Scores messages against the exemplars (trained on first use, then kept).

    Args:
        exemplars: The exemplars to learn from.
        embed: Text list -> normalised vectors; None means the shared all-MiniLM-L6-v2.
        cache_dir: Where the exemplar vectors are cached; None keeps them in memory only.

    """

    def __init__(
        self, exemplars: Exemplars, *, embed: Embed | None = None, cache_dir: Path | None = None
    ) -> None:
        self.exemplars = exemplars
        self._embed = embed
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._models: _Models | None = None
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def _embedder(self) -> Embed:
        if self._embed is None:
            from tools.models.embeddings import get_embeddings

            model = get_embeddings()

            def embed(texts: Sequence[str]) -> Sequence[Sequence[float]]:
                return model.embed_documents(list(texts))

            self._embed = embed
        return self._embed

    def _exemplar_vectors(self, texts: list[str]) -> np.ndarray:
        path = None
        if self._cache_dir is not None:
            path = self._cache_dir / "guardrails" / f"exemplars-{self.exemplars.digest}.npy"
            try:
                cached: np.ndarray = np.load(path)
                if cached.shape[0] == len(texts):
                    return cached
            except (OSError, ValueError):
                pass
        vectors = np.asarray(self._embedder()([plain_text(t) for t in texts]), dtype=np.float32)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, vectors)
            except OSError as exc:  # a read-only cache costs time, not correctness
                log.info("cannot cache the exemplar vectors in %s: %s", path, exc)
        return vectors

    def _trained(self) -> _Models:
        with self._lock:
            if self._models is None:
                path = None
                if self._cache_dir is not None:
                    key = f"{self.exemplars.digest}-{_C_HARM}-{_C_CATEGORY}"
                    path = self._cache_dir / "guardrails" / f"models-v2-{key}.npz"
                self._models = _load_models(path) if path is not None else None
                if self._models is None:
                    self._models = self._fit()
                    if path is not None:
                        _save_models(path, self._models)
            return self._models

    def _fit(self) -> _Models:
        from sklearn.linear_model import LogisticRegression

        texts, labels = self.exemplars.labelled()
        vectors = self._exemplar_vectors(texts)
        harmful = np.array([label != "benign" for label in labels])
        harm = LogisticRegression(C=_C_HARM, max_iter=3000, class_weight="balanced")
        harm.fit(vectors, harmful)
        category = LogisticRegression(C=_C_CATEGORY, max_iter=3000)
        category.fit(vectors[harmful], np.array(labels)[harmful])
        return Linear.of(harm), Linear.of(category), vectors[harmful], vectors[~harmful]

    def warm(self) -> None:
        """Train now (embedding the exemplars) instead of on the first message."""
        self._trained()

    def vector(self, text: str) -> np.ndarray:
        """The embedding of a message's plain form (cached per text)."""
        plain = plain_text(text)
        with self._lock:
            cached = self._vectors.get(plain)
            if cached is not None:
                self._vectors.move_to_end(plain)
                return cached
        vector = np.asarray(self._embedder()([plain])[0], dtype=np.float32)
        with self._lock:
            self._vectors[plain] = vector
            while len(self._vectors) > _CACHE_SIZE:
                self._vectors.popitem(last=False)
        return vector

    def score(self, text: str, *, english: bool | None = None) -> SemanticScore:
        """Score one message.

        Args:
            text: The message.
            english: Whether it reads as English (:func:`looks_english`) when the caller
                already knows: the input check asks once per message and passes it on.
                None: asked here.

        Raises:
            tools.models.embeddings.EmbeddingModelError: The embedding model is missing.

        """
        harm, category, harmful_vectors, benign_vectors = self._trained()
        vector = self.vector(text).reshape(1, -1)
        p_harm = float(harm.probabilities(vector)[0][list(harm.classes).index(True)])
        probabilities = category.probabilities(vector)[0]
        best = str(category.classes[int(np.argmax(probabilities))])
        nearest = float((harmful_vectors @ vector[0]).max())
        nearest_benign = float((benign_vectors @ vector[0]).max())
        classes = [str(c) for c in category.classes]
        categories = {c: float(p) for c, p in zip(classes, probabilities, strict=True)}
        if english is None:
            english = looks_english(text)
        return SemanticScore(p_harm, best, nearest, english, nearest_benign, categories)


_LAYERS: dict[str, SemanticLayer] = {}
_LAYERS_LOCK = threading.Lock()


def shared_layer(path: Path, cache_dir: Path | None) -> SemanticLayer:
    """One layer per exemplars content in a process: every graph shares its training.

    Args:
        path: The exemplars file (read now; a changed file makes a new layer).
        cache_dir: Where the first layer for this content caches its exemplar vectors.

    Raises:
        ValueError: The file is invalid.

    """
    exemplars = Exemplars.load(path)
    with _LAYERS_LOCK:
        if exemplars.digest not in _LAYERS:
            _LAYERS[exemplars.digest] = SemanticLayer(exemplars, cache_dir=cache_dir)
        return _LAYERS[exemplars.digest]
