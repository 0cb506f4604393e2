"""Fine-tuning data: per-line validation errors, the seeded split, assistant-only labels."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from graph.settings import Settings
from tools.finetune.data import (
    IGNORE_INDEX,
    DatasetError,
    Example,
    dataset_hash,
    load_dataset,
    split,
    tokenize_example,
)

SHIPPED = Path(__file__).resolve().parents[2] / "evals" / "finetune" / "brackenfield.jsonl"
HELD_OUT = SHIPPED.with_name("brackenfield.eval.yaml")


def _line(*turns: tuple[str, str]) -> str:
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in turns]})


GOOD = _line(("user", "Hi?"), ("assistant", "Hello."))


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected an object"),
        (json.dumps({"msgs": []}), "messages: Field required"),
        (_line(("user", "Hi?")), "at least 2 items"),
        (
            _line(("user", "Hi?"), ("user", "Again?")),
            "turn 1: expected an assistant turn, got user",
        ),
        (_line(("assistant", "Hi."), ("user", "Hm?")), "turn 0: expected a user turn"),
        (_line(("user", "Hi?"), ("assistant", "Yes."), ("user", "And?")), "last turn must be"),
        (
            _line(("user", "Hi?"), ("system", "Be terse."), ("assistant", "Ok.")),
            "a system turn may only come first",
        ),
        (_line(("user", "Hi?"), ("assistant", "   ")), "content is blank"),
        (_line(("user", ""), ("assistant", "Ok.")), "at least 1 character"),
        (_line(("user", "Hi?"), ("bot", "Ok.")), "messages.1.role"),
        (
            json.dumps({"messages": [{"role": "user", "content": "a", "name": "x"}] * 2}),
            "Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    path = _write(tmp_path, [GOOD, "", bad, GOOD])
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    assert caught.value.problems == [caught.value.problems[0]]
    assert caught.value.problems[0].startswith(f"{path}:3: ")
    assert message in caught.value.problems[0]


def test_every_bad_line_is_reported_once(tmp_path: Path) -> None:
    path = _write(tmp_path, ["oops", GOOD, _line(("user", "x")), GOOD, "{}"])
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    lines = [int(re.match(rf"{re.escape(str(path))}:(\d+): ", p)[1]) for p in caught.value.problems]  # type: ignore[index]
    assert lines == [1, 3, 5]
    assert str(caught.value).count("\n") == 2


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_file_is_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match="no examples"):
        load_dataset(path)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(tmp_path / "nope.jsonl")


def test_good_lines_load_in_order_with_an_optional_system_turn(tmp_path: Path) -> None:
    lines = [
        _line(("system", "Be kind."), ("user", "A?"), ("assistant", "a")),
        _line(("user", "B?"), ("assistant", "b"), ("user", "C?"), ("assistant", "c")),
    ]
    examples = load_dataset(_write(tmp_path, lines))
    assert [e.messages[-1].content for e in examples] == ["a", "c"]
    assert examples[0].as_dicts()[0] == {"role": "system", "content": "Be kind."}


def test_the_shipped_dataset_is_valid_and_big_enough() -> None:
    examples = load_dataset(SHIPPED)
    assert 80 <= len(examples) <= 200
    assert len({e.messages[-2].content for e in examples}) == len(examples)  # no repeats


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def test_the_held_out_questions_are_not_in_the_shipped_dataset() -> None:
    corpus = yaml.safe_load(HELD_OUT.read_text(encoding="utf-8"))
    held_out = {_words(turn) for case in corpus["cases"] for turn in case["turns"]}
    asked = {
        _words(m.content) for e in load_dataset(SHIPPED) for m in e.messages if m.role == "user"
    }
    assert len(held_out) == len(corpus["cases"]) >= 15
    assert not held_out & asked


def test_the_shipped_dataset_mixes_general_chat_without_refusals_into_the_faq() -> None:
    """The FAQ alone taught SmolLM2 to answer everything in one FAQ sentence.

    Refusals are not taught: 6 refusal examples made the tuned SmolLM2 open 17 harmless
    replies with the refusal wording ("I've been feeling really down lately"), and the
    guardrails refuse harmful requests before the model is asked anyway.
    """
    examples = load_dataset(SHIPPED)
    faq = [e for e in examples if "Brackenfield" in e.messages[-1].content]
    other = [e for e in examples if e not in faq]
    refusal = Settings().safety.refusal_template.split("(")[0].strip()  # "Sorry, I can't ..."
    assert len(faq) >= 60 and len(other) >= 30
    assert not [e for e in examples if e.messages[-1].content.startswith(refusal)]


def _examples(n: int) -> list[Example]:
    return [
        Example.model_validate(
            {
                "messages": [
                    {"role": "user", "content": f"q{i}"},
                    {"role": "assistant", "content": "a"},
                ]
            }
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(("n", "fraction"), [(68, 0.1), (10, 0.5), (3, 0.2), (100, 0.25)])
def test_the_split_is_seeded_disjoint_and_complete(n: int, fraction: float) -> None:
    examples = _examples(n)
    train, val = split(examples, fraction, seed=7)
    assert (train, val) == split(examples, fraction, seed=7)
    ids = {id(e) for e in train}
    assert ids.isdisjoint(id(e) for e in val)
    assert len(train) + len(val) == n
    assert 1 <= len(val) < n
    assert abs(len(val) - n * fraction) <= 1


def test_another_seed_gives_another_split() -> None:
    examples = _examples(50)
    splits = {tuple(e.messages[0].content for e in split(examples, 0.2, s)[1]) for s in range(5)}
    assert len(splits) > 1


def test_no_validation_fraction_keeps_everything_for_training() -> None:
    train, val = split(_examples(5), 0.0, seed=0)
    assert (len(train), val) == (5, [])


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_a_bad_fraction_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="validation_fraction"):
        split(_examples(3), fraction, seed=0)


def test_the_hash_changes_with_the_bytes(tmp_path: Path) -> None:
    path = _write(tmp_path, [GOOD])
    before = dataset_hash(path)
    path.write_text(GOOD + "\n" + GOOD + "\n", encoding="utf-8")
    assert dataset_hash(path) != before and len(before) == 64


class ChatMLWords:
    """A toy tokenizer: ChatML rendering, one id per whitespace-separated piece or newline."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def _render(self, turns: list[dict[str, str]], prompt: bool) -> str:
        text = "".join(f"<|im_start|>{t['role']}\n{t['content']}<|im_end|>\n" for t in turns)
        return text + ("<|im_start|>assistant\n" if prompt else "")

    def _pieces(self, text: str) -> list[str]:
        return re.findall(r"<\|im_(?:start|end)\|>|\n|[^\s<]+|\s", text.replace(" ", " "))

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any:
        text = self._render(conversation, kwargs.get("add_generation_prompt", False))
        ids = [self.vocab.setdefault(p, len(self.vocab)) for p in self._pieces(text) if p != " "]
        return {"input_ids": ids}

    def decode(self, token_ids: Any, **kwargs: Any) -> Any:
        names = {v: k for k, v in self.vocab.items()}
        return "".join(names[i] for i in token_ids)


def _learnt(tokenizer: ChatMLWords, ids: list[int], labels: list[int]) -> list[str]:
    return [
        tokenizer.decode([i]) for i, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX
    ]


@pytest.mark.parametrize(
    "turns",
    [
        [("user", "What is two?"), ("assistant", "Two is 2.")],
        [("system", "Be short."), ("user", "Colour of sky?"), ("assistant", "Blue sky.")],
        [
            ("user", "a b"),
            ("assistant", "first answer"),
            ("user", "c d"),
            ("assistant", "second one"),
        ],
    ],
)
def test_only_assistant_tokens_and_their_end_are_learnt(turns: list[tuple[str, str]]) -> None:
    tokenizer = ChatMLWords()
    example = Example.model_validate({"messages": [{"role": r, "content": c} for r, c in turns]})
    tok = tokenize_example(tokenizer, example, max_length=512)
    assert len(tok.input_ids) == len(tok.labels)
    expected: list[str] = []
    for role, content in turns:
        if role == "assistant":
            expected += [*content.split(), "<|im_end|>"]
    assert _learnt(tokenizer, tok.input_ids, tok.labels) == expected
    assert tok.trained_tokens == len(expected)


def test_long_examples_are_cut_to_max_length() -> None:
    tokenizer = ChatMLWords()
    example = Example.model_validate(
        {
            "messages": [
                {"role": "user", "content": "q " * 50},
                {"role": "assistant", "content": "a " * 50},
            ]
        }
    )
    tok = tokenize_example(tokenizer, example, max_length=40)
    assert len(tok.input_ids) == len(tok.labels) == 40
