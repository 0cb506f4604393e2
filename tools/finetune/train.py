"""LoRA training with peft on transformers, CPU by default, seeded and resumable.

The base model is a GGUF (what the assistant serves); its transformers copy is made once
with :func:`tools.models.huggingface.export_gguf_to_transformers` and cached, keyed by the
GGUF's name, size and modification time. The adapter trained on that (dequantised) copy
is applied to the same GGUF by llama.cpp (:mod:`tools.finetune.export`).

The loop is ours rather than transformers' ``Trainer``: a few lines of AdamW, and the
checkpoint (adapter weights, optimiser state, step, RNG) is exactly what resuming needs.
The batch order of each epoch is a permutation seeded by ``seed + epoch``, so a resumed run
sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graph.settings import FinetuneSettings
from tools.finetune.data import (
    IGNORE_INDEX,
    Example,
    Tokenized,
    dataset_hash,
    load_dataset,
    split,
    tokenize_example,
)
from tools.finetune.track import FinetuneRun, LossPoint, Tracker, new_run_id

CHECKPOINT = "checkpoint"
ADAPTER = "adapter"


class TrainError(RuntimeError):
    """Training cannot start or continue (a user-facing message)."""


def base_cache_dir(gguf: Path, cache_root: Path) -> Path:
    """Where the transformers copy of ``gguf`` is cached (changes when the file does)."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return cache_root / "finetune" / "base" / f"{gguf.stem}-{key.hexdigest()[:12]}"


def prepare_base(gguf: Path, cache_root: Path) -> Path:
    """The transformers copy of a GGUF model, converted on first use and cached.

    Args:
        gguf: The GGUF model file.
        cache_root: The cache directory (``Settings.cache_dir``).

    Returns:
        A transformers model directory (config, tokenizer, safetensors weights).

    Raises:
        TrainError: The file is missing or transformers cannot read it.
    """
    from tools.models.huggingface import export_gguf_to_transformers

    if not gguf.is_file():
        raise TrainError(f"base model not found: {gguf}")
    out = base_cache_dir(gguf, cache_root)
    if (out / "model.safetensors").is_file():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        export_gguf_to_transformers(gguf, tmp)
    except (OSError, ValueError, KeyError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TrainError(f"cannot convert {gguf.name} to transformers weights: {exc}") from exc
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def quantisation_note() -> str:
    """Why training runs in full precision (QLoRA needs a CUDA GPU and bitsandbytes)."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        return "no: no CUDA GPU (CPU training, full-precision base; QLoRA needs a GPU)"
    if importlib.util.find_spec("bitsandbytes") is None:
        return "no: bitsandbytes is not installed (pip install bitsandbytes for QLoRA)"
    return "no: QLoRA is not wired up yet (GPU and bitsandbytes present)"


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The example order of one epoch (the same for a resumed run)."""
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> list[int]:
    """Indices of the training examples of optimiser step ``step`` (0-based)."""
    per_epoch = math.ceil(n / batch_size)
    epoch, within = divmod(step, per_epoch)
    order = epoch_order(n, seed, epoch)
    return order[within * batch_size : (within + 1) * batch_size]


def total_steps(n_train: int, cfg: FinetuneSettings) -> int:
    """Optimiser steps of a run: every epoch, or ``max_steps`` if fewer."""
    steps = cfg.epochs * math.ceil(n_train / cfg.batch_size)
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def collate(items: Sequence[Tokenized], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch: ids with ``pad_id``, labels with the ignore index, a mask of 1/0."""
    import torch

    width = max(len(t.input_ids) for t in items)
    ids, labels, mask = [], [], []
    for t in items:
        pad = width - len(t.input_ids)
        ids.append(t.input_ids + [pad_id] * pad)
        labels.append(t.labels + [IGNORE_INDEX] * pad)
        mask.append([1] * len(t.input_ids) + [0] * pad)
    return {
        "input_ids": torch.tensor(ids),
        "labels": torch.tensor(labels),
        "attention_mask": torch.tensor(mask),
    }


def _lora_config(cfg: FinetuneSettings) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
    )


def _save_checkpoint(model: Any, optimizer: Any, step: int, run_dir: Path) -> None:
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    final = run_dir / CHECKPOINT
    tmp = run_dir / (CHECKPOINT + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()}
    save_file(weights, str(tmp / "adapter.safetensors"))
    torch.save(
        {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()},
        tmp / "optimizer.pt",
    )
    (tmp / "state.json").write_text(json.dumps({"step": step}), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of a run's last checkpoint, or None if it has none."""
    try:
        state = json.loads((run_dir / CHECKPOINT / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    step = state.get("step")
    return step if isinstance(step, int) else None


def _load_checkpoint(model: Any, optimizer: Any, run_dir: Path) -> int:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = run_dir / CHECKPOINT
    set_peft_model_state_dict(model, load_file(str(folder / "adapter.safetensors")))
    state = torch.load(folder / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    step = checkpoint_step(run_dir)
    if step is None:
        raise TrainError(f"{folder}: no readable state.json")
    return step


def _validation_loss(model: Any, items: Sequence[Tokenized], pad_id: int, batch: int) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            tokens = sum(t.trained_tokens for t in chunk)
            out = model(**collate(chunk, pad_id))
            total += float(out.loss) * tokens
            count += tokens
    model.train()
    return total / max(count, 1)


def new_run(
    cfg: FinetuneSettings, dataset: Path, base_gguf: Path, base_hf: Path, runs_dir: Path
) -> tuple[FinetuneRun, Path, list[Example], list[Example]]:
    """Validate the data, split it and create the run's directory and record.

    Raises:
        DatasetError: The dataset has bad lines.
    """
    examples = load_dataset(dataset)
    train, validation = split(examples, cfg.validation_fraction, cfg.seed)
    run_id = new_run_id()
    run = FinetuneRun(
        run_id=run_id,
        created=datetime.now(UTC),
        base_gguf=str(base_gguf),
        base_hf_dir=str(base_hf),
        dataset=str(dataset),
        data_sha256=dataset_hash(dataset),
        n_train=len(train),
        n_validation=len(validation),
        settings=cfg.model_dump(mode="json"),
        total_steps=total_steps(len(train), cfg),
    )
    return run, runs_dir / run_id, train, validation


def train(
    run: FinetuneRun,
    run_dir: Path,
    *,
    resume: bool = False,
    show_progress: bool = True,
    stop_after: int | None = None,
) -> FinetuneRun:
    """Train (or resume) the run's adapter and save it to ``<run_dir>/adapter``.

    Args:
        run: The run record (from :func:`new_run`, or :func:`load_record` to resume).
        run_dir: The run's directory.
        resume: Continue from ``<run_dir>/checkpoint`` (an error if there is none).
        show_progress: Show a tqdm progress bar on stderr.
        stop_after: Stop after this many steps of this call (tests interrupting a run).

    Returns:
        The updated record (also saved as ``run.json``).

    Raises:
        TrainError: Resuming without a checkpoint, or the data changed since the run began.
        DatasetError: The dataset has bad lines.
    """
    import torch
    from peft import get_peft_model
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = FinetuneSettings.model_validate(run.settings)
    dataset = Path(run.dataset)
    if resume and dataset_hash(dataset) != run.data_sha256:
        raise TrainError(f"{dataset} changed since run {run.run_id} began; start a new run")
    train_ex, val_ex = split(load_dataset(dataset), cfg.validation_fraction, cfg.seed)

    torch.manual_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(run.base_hf_dir, local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(run.base_hf_dir, local_files_only=True)
    model = get_peft_model(base, _lora_config(cfg))
    model.train()
    run.trainable_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    run.quantised_training = quantisation_note()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_items = [tokenize_example(tokenizer, e, cfg.max_length) for e in train_ex]
    val_items = [tokenize_example(tokenizer, e, cfg.max_length) for e in val_ex]
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate
    )

    start = 0
    if resume:
        if checkpoint_step(run_dir) is None:
            raise TrainError(f"run {run.run_id} has no checkpoint to resume from")
        start = _load_checkpoint(model, optimizer, run_dir)
        # Losses logged after the checkpoint are redone.
        run.train_loss = [p for p in run.train_loss if p.step <= start]
        run.validation_loss = [p for p in run.validation_loss if p.step <= start]
        run.resumed_from_step.append(start)
    run.status = "training"
    tracker = Tracker(run, run_dir)
    tracker.start()
    total = run.total_steps
    end = total if stop_after is None else min(total, start + stop_after)
    if start == 0 and val_items:
        loss = _validation_loss(model, val_items, pad_id, cfg.batch_size)
        run.validation_loss.append(LossPoint(step=0, loss=loss))
        tracker.scalar("loss/validation", loss, 0)

    timed = 0.0
    bar = tqdm(total=total, initial=start, desc="LoRA", unit="step", disable=not show_progress)
    try:
        for step in range(start, end):
            began = time.perf_counter()
            indices = batch_indices(step, len(train_items), cfg.batch_size, cfg.seed)
            out = model(**collate([train_items[i] for i in indices], pad_id))
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            timed += time.perf_counter() - began
            done = step + 1
            loss = out.loss.item()
            run.train_loss.append(LossPoint(step=done, loss=loss))
            tracker.scalar("loss/train", loss, done)
            run.steps_done = done
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            if val_items and (done % cfg.eval_every == 0 or done == total):
                vloss = _validation_loss(model, val_items, pad_id, cfg.batch_size)
                run.validation_loss.append(LossPoint(step=done, loss=vloss))
                tracker.scalar("loss/validation", vloss, done)
            if done % cfg.save_every == 0 or done == end:
                _save_checkpoint(model, optimizer, done, run_dir)
                tracker.save()
    finally:
        bar.close()
    steps_now = end - start
    run.seconds_training += timed
    if steps_now:
        run.seconds_per_step = timed / steps_now
        tracker.scalar("time/seconds_per_step", run.seconds_per_step, end)
    if end == total:
        model.save_pretrained(str(run_dir / ADAPTER))
        run.adapter_dir = str(run_dir / ADAPTER)
        run.status = "trained"
    tracker.close()
    return run
