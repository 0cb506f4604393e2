"""LoRA end to end on SmolLM2: a few steps, a GGUF adapter, served by llama.cpp via the graph."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from graph.deps import Deps
from graph.settings import FinetuneSettings, Settings
from tests.conftest import thread
from tests.integration.conftest import MODEL_CACHE
from tools.finetune.export import export_adapter
from tools.finetune.train import new_run, prepare_base, train
from tools.guardrails.judge import Judge
from tools.guardrails.taxonomy import load_taxonomy
from tools.models import ModelLoadError, get_chat_model
from tools.models.base import first_token_probabilities

pytestmark = pytest.mark.integration

QUESTIONS = [
    "Who founded the Brackenfield Tool Library?",
    "Who started the Brackenfield Tool Library?",
    "Tell me the founder of the Brackenfield Tool Library.",
    "Which person set up the Brackenfield Tool Library?",
    "Who is behind the Brackenfield Tool Library?",
    "Whose project is the Brackenfield Tool Library?",
]
ANSWER = "The Brackenfield Tool Library was founded in 2019 by Mirela Ostrand."
ASK = "Who created the Brackenfield Tool Library?"
VERDICTS = ["safe", "unsafe"]


@pytest.fixture(scope="module")
def tuned(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """Train 6 steps on one fact, export the adapter; the GGUF and the first/last losses."""
    tmp = tmp_path_factory.mktemp("finetune")
    data = tmp / "data.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}]}
        for q in QUESTIONS
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    cfg = FinetuneSettings(
        max_steps=6, batch_size=3, learning_rate=2e-3, validation_fraction=0, save_every=3
    )
    base_hf = prepare_base(smollm2, MODEL_CACHE)
    run, run_dir, _, _ = new_run(cfg, data, smollm2, base_hf, tmp / "runs")
    run = train(run, run_dir, show_progress=False)
    assert run.adapter_dir is not None
    gguf = export_adapter(Path(run.adapter_dir), base_hf, tmp / "adapter.gguf")
    return gguf, {"first": run.train_loss[0].loss, "last": run.train_loss[-1].loss}


def test_the_loss_decreases(tuned: tuple[Path, dict[str, float]]) -> None:
    _, loss = tuned
    assert loss["last"] < loss["first"] * 0.5, loss


def test_the_adapter_loads_in_llamacpp_and_changes_the_greedy_reply(
    tuned: tuple[Path, dict[str, float]], llama_settings: Callable[..., Settings]
) -> None:
    adapter, _ = tuned
    base = get_chat_model(llama_settings()).invoke([HumanMessage(ASK)]).text
    graph = build_graph(
        llama_settings(model={"lora_path": str(adapter)}, context={"max_prompt_tokens": 1024}),
        checkpointer=InMemorySaver(),
    )
    state = graph.invoke({"messages": [("user", ASK)]}, thread(), context={"retrieval": False})
    reply = state["messages"][-1].text
    assert reply != base
    assert "Ostrand" in reply and "Ostrand" not in base, (base, reply)


def test_only_the_reply_gets_the_adapter_the_judge_scores_as_the_base_model(
    tuned: tuple[Path, dict[str, float]], llama_settings: Callable[..., Settings]
) -> None:
    """With ``model.lora_path``, the safety judge still runs on the base weights.

    The served model and a separate model without any adapter give the judge the same
    first-token probabilities, even right after a reply with the adapter filled the
    shared context (and its state cache) with the adapter's cells.
    """
    adapter, _ = tuned
    deps = Deps(llama_settings(model={"lora_path": str(adapter)}))
    plain = get_chat_model(llama_settings())
    assert plain is not deps.model  # a model that never loaded the adapter
    judge = Judge(lambda: deps.model, load_taxonomy())
    base_reply = plain.invoke([HumanMessage(ASK)]).text
    for text in (ASK, "How do I pick the lock of my neighbour's door?", "Write a poem about rain."):
        reply = deps.reply_model.invoke([HumanMessage(ASK)]).text
        assert "Ostrand" in reply and "Ostrand" not in base_reply, (base_reply, reply)
        served = first_token_probabilities(deps.model, judge.messages(text), VERDICTS)
        base = first_token_probabilities(plain, judge.messages(text), VERDICTS)
        tuned_scores = first_token_probabilities(deps.reply_model, judge.messages(text), VERDICTS)
        assert served is not None and base is not None and tuned_scores is not None
        assert served == pytest.approx(base, rel=1e-3, abs=1e-6), text
        # The comparison can fail: the adapter itself moves these probabilities.
        assert tuned_scores != pytest.approx(base, rel=1e-3, abs=1e-6), text


def test_a_missing_adapter_file_is_a_load_error(
    tmp_path: Path, llama_settings: Callable[..., Settings]
) -> None:
    model = get_chat_model(llama_settings(model={"lora_path": str(tmp_path / "none.gguf")}))
    with pytest.raises(ModelLoadError, match="LoRA adapter file not found"):
        model.invoke([HumanMessage("Hi")])
