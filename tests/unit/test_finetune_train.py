"""Fine-tuning runs on a tiny random model: the record, the batches, resuming, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from apps.cli import app
from graph.settings import FinetuneSettings
from tools.finetune.track import (
    FinetuneRun,
    RunFileError,
    find_run,
    list_runs,
    load_record,
    save_record,
)
from tools.finetune.train import (
    ADAPTER,
    CHECKPOINT,
    TrainError,
    batch_indices,
    checkpoint_step,
    new_run,
    total_steps,
    train,
)

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = "who what when is the library open saturday tuesday founded in 2019 by mirela ostrand"


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with a word-level ChatML tokenizer (no model files needed)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
    pieces = [*specials, "user", "assistant", "system", "\n", "?", ".", *WORDS.split()]
    core = Tokenizer(models.WordLevel({p: i for i, p in enumerate(pieces)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split("\n", behavior="isolated"), pre_tokenizers.WhitespaceSplit()]
    )
    core.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>"
    )
    tokenizer.chat_template = CHATML
    config = LlamaConfig(
        vocab_size=len(pieces),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-base")
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _dataset(path: Path, n: int = 10) -> Path:
    rows = []
    for i in range(n):
        question = ["who founded the library ?", "when is the library open ?"][i % 2]
        answer = ["mirela ostrand founded the library in 2019 .", "saturday and tuesday ."][i % 2]
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _cfg(**over: object) -> FinetuneSettings:
    base: dict[str, object] = {
        "max_steps": 6,
        "batch_size": 2,
        "learning_rate": 5e-3,
        "lora_r": 4,
        "lora_alpha": 8,
        "save_every": 2,
        "eval_every": 3,
        "validation_fraction": 0.2,
        "max_length": 64,
    }
    return FinetuneSettings.model_validate({**base, **over})


def _start(tmp_path: Path, tiny_base: Path, name: str, **over: object) -> tuple[FinetuneRun, Path]:
    data = _dataset(tmp_path / "data.jsonl")
    run, run_dir, _, _ = new_run(
        _cfg(**over), data, tmp_path / "base.gguf", tiny_base, tmp_path / name
    )
    return run, run_dir


def _adapter(run_dir: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return dict(load_file(str(run_dir / ADAPTER / "adapter_model.safetensors")))


def _event_tags(run_dir: Path) -> dict[str, int]:
    """How often each tag was logged, read back from the TensorBoard event files."""
    import struct

    from tensorboardX.proto import event_pb2

    tags: dict[str, int] = {}
    for path in (run_dir / "tensorboard").glob("events.out.tfevents.*"):
        data, at = path.read_bytes(), 0
        while at < len(data):  # records: length (8), crc (4), event, crc (4)
            (size,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[at + 12 : at + 12 + size])
            at += 12 + size + 4
            for value in event.summary.value:
                tags[value.tag] = tags.get(value.tag, 0) + 1
    return tags


def test_a_run_writes_its_record_events_checkpoint_and_adapter(
    tmp_path: Path, tiny_base: Path
) -> None:
    run, run_dir = _start(tmp_path, tiny_base, "runs")
    done = train(run, run_dir, show_progress=False)
    record = load_record(run_dir)
    assert record == done
    assert (record.status, record.steps_done, record.total_steps) == ("trained", 6, 6)
    assert [p.step for p in record.train_loss] == [1, 2, 3, 4, 5, 6]
    assert [p.step for p in record.validation_loss] == [0, 3, 6]
    assert record.validation_loss[-1].loss < record.validation_loss[0].loss
    assert record.n_train + record.n_validation == 10 and record.n_validation == 2
    assert len(record.data_sha256) == 64 and record.trainable_params > 0
    assert record.seconds_per_step is not None and record.seconds_per_step > 0
    assert record.quantised_training.startswith("no:")
    assert record.settings["lora_r"] == 4
    assert _event_tags(run_dir) == {
        "run/text_summary": 1,
        "loss/train": 6,
        "loss/validation": 3,
        "time/seconds_per_step": 1,
    }
    assert checkpoint_step(run_dir) == 6
    assert (run_dir / ADAPTER / "adapter_config.json").is_file()


def test_resume_picks_up_the_checkpoint_and_ends_as_an_unbroken_run(
    tmp_path: Path, tiny_base: Path
) -> None:
    whole, whole_dir = _start(tmp_path, tiny_base, "whole")
    train(whole, whole_dir, show_progress=False)

    run, run_dir = _start(tmp_path, tiny_base, "broken")
    # Interrupted after 3 steps: the checkpoint is at step 2 (save_every=2) plus the
    # final save of the call at step 3.
    train(run, run_dir, show_progress=False, stop_after=3)
    partial = load_record(run_dir)
    assert (partial.status, partial.steps_done, checkpoint_step(run_dir)) == ("training", 3, 3)
    assert not (run_dir / ADAPTER).exists()

    resumed = train(load_record(run_dir), run_dir, resume=True, show_progress=False)
    assert resumed.resumed_from_step == [3]
    assert [p.step for p in resumed.train_loss] == [1, 2, 3, 4, 5, 6]
    assert [p.loss for p in resumed.train_loss] == pytest.approx(
        [p.loss for p in load_record(whole_dir).train_loss], rel=1e-4
    )
    a, b = _adapter(whole_dir), _adapter(run_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key  # type: ignore[arg-type]


def test_resume_without_a_checkpoint_is_refused(tmp_path: Path, tiny_base: Path) -> None:
    run, run_dir = _start(tmp_path, tiny_base, "runs")
    with pytest.raises(TrainError, match="no checkpoint"):
        train(run, run_dir, resume=True, show_progress=False)


def test_resume_after_the_data_changed_is_refused(tmp_path: Path, tiny_base: Path) -> None:
    run, run_dir = _start(tmp_path, tiny_base, "runs")
    train(run, run_dir, show_progress=False, stop_after=2)
    _dataset(Path(run.dataset), n=12)
    with pytest.raises(TrainError, match="changed since"):
        train(load_record(run_dir), run_dir, resume=True, show_progress=False)
    assert (run_dir / CHECKPOINT).is_dir()


@pytest.mark.parametrize(("n", "batch", "seed"), [(10, 2, 0), (7, 3, 1), (5, 5, 2)])
def test_each_epoch_visits_every_example_once(n: int, batch: int, seed: int) -> None:
    per_epoch = -(-n // batch)
    for epoch in range(3):
        seen = [
            i
            for s in range(per_epoch)
            for i in batch_indices(epoch * per_epoch + s, n, batch, seed)
        ]
        assert sorted(seen) == list(range(n))
    assert batch_indices(0, n, batch, seed) == batch_indices(0, n, batch, seed)


@pytest.mark.parametrize(
    ("n", "over", "steps"),
    [
        (61, {"epochs": 4, "batch_size": 4}, 64),
        (61, {"epochs": 4, "max_steps": 10}, 10),
        (3, {"epochs": 2, "batch_size": 2}, 4),
    ],
)
def test_total_steps(n: int, over: dict[str, int], steps: int) -> None:
    assert total_steps(n, FinetuneSettings.model_validate(over)) == steps


def _record(run_id: str, **over: object) -> FinetuneRun:
    data: dict[str, object] = {
        "run_id": run_id,
        "created": datetime(2026, 1, 1, tzinfo=UTC),
        "base_gguf": "/m/base.gguf",
        "base_hf_dir": "/c/base",
        "dataset": "/d/data.jsonl",
        "data_sha256": "0" * 64,
        "n_train": 9,
        "n_validation": 1,
        "settings": {"lora_r": 16},
    }
    return FinetuneRun.model_validate({**data, **over})


def test_the_record_round_trips_and_rejects_unknown_fields(tmp_path: Path) -> None:
    run = _record(
        "20260101-000000-aaaa",
        eval={"base:x": {"corpus": "x", "passed": 1, "total": 4, "rate": 0.25}},
    )
    save_record(run, tmp_path / run.run_id)
    assert load_record(tmp_path / run.run_id) == run
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text(
        json.dumps({**json.loads(run.model_dump_json()), "surprise": 1})
    )
    with pytest.raises(RunFileError, match="not a run record"):
        load_record(tmp_path / "bad")
    with pytest.raises(RunFileError, match="no run record"):
        load_record(tmp_path / "missing")


def test_runs_are_listed_oldest_first_and_found_by_prefix(tmp_path: Path) -> None:
    for run_id in ("20260102-000000-bbbb", "20260101-000000-aaaa", "20260101-000000-aacc"):
        save_record(_record(run_id), tmp_path / run_id)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run.json").write_text("{")
    assert [r.run_id for r in list_runs(tmp_path)] == [
        "20260101-000000-aaaa",
        "20260101-000000-aacc",
        "20260102-000000-bbbb",
    ]
    assert find_run(tmp_path, None).name == "20260102-000000-bbbb"
    assert find_run(tmp_path, "20260101-000000-aac").name == "20260101-000000-aacc"
    with pytest.raises(RunFileError, match="2 runs"):
        find_run(tmp_path, "20260101")
    with pytest.raises(RunFileError, match="no run"):
        find_run(tmp_path, "1999")
    with pytest.raises(RunFileError, match="no fine-tuning runs"):
        find_run(tmp_path / "empty", None)


def test_cli_prepare_names_each_bad_line_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\nnot json\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["finetune", "prepare", "--dataset", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:1: messages:" in result.output and f"{bad}:2: invalid JSON" in result.output
    assert "2 bad line(s)" in result.output and "Traceback" not in result.output


def test_cli_runs_lists_a_run_and_eval_without_runs_is_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = runner.invoke(app, ["finetune", "runs"])
    assert empty.exit_code == 0 and "No fine-tuning runs" in empty.output
    missing = runner.invoke(app, ["finetune", "eval"])
    assert missing.exit_code == 2 and "no fine-tuning runs" in missing.output
    assert "Traceback" not in missing.output


def test_cli_train_with_a_missing_base_file_fails_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["finetune", "train", "--base", str(tmp_path / "x.gguf")])
    assert result.exit_code == 2 and "no such GGUF file" in result.output
