"""The real graph on real models through llama.cpp (SmolLM2-135M; one smoke test on the 1.5B)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from graph.errors import MessageTooLongError
from graph.settings import Settings
from tests.conftest import thread
from tools.models import LlamaCppChatModel, get_chat_model, to_chat_dicts
from tools.models.state_cache import as_tokens
from tools.prompting import Turn, build_prompt

pytestmark = pytest.mark.integration


def run(graph: Any, text: str, name: str = "t1", **context: Any) -> dict[str, Any]:
    state: dict[str, Any] = graph.invoke(
        {"messages": [("user", text)]}, thread(name), context=context or None
    )
    return state


def test_two_turns_stream_tokens_on_smollm2(llama_settings: Callable[..., Settings]) -> None:
    graph = build_graph(llama_settings(), checkpointer=InMemorySaver())
    chunks = [
        chunk.text
        for chunk, meta in graph.stream(
            {"messages": [("user", "Say hello.")]}, thread(), stream_mode="messages"
        )
        if isinstance(chunk, AIMessageChunk) and meta["langgraph_node"] == "generate"
    ]
    assert len([c for c in chunks if c]) > 1, "tokens did not stream"
    state = run(graph, "Explain like I'm five: what is rain?")
    assert state["concept"] == "explain_simply"
    assert state["messages"][-1].text.strip()
    assert len(state["messages"]) == 4
    assert state["safety"]["allowed"] is True


def test_token_budget_counts_at_least_what_the_template_renders(
    llama_settings: Callable[..., Settings],
) -> None:
    """Our per-message estimate must never undercount the real chat-template prompt."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    model = get_chat_model(llama_settings())
    assert isinstance(model, LlamaCppChatModel)
    llama = model.llama
    history = [
        Turn((HumanMessage("Hi, I am Ada. " * n), AIMessage("Hello Ada! " * n))) for n in (1, 5, 9)
    ]
    prompt = build_prompt(
        system="You are a helpful assistant.",
        history=history,
        new_message=HumanMessage("What's my name, and why is the sky blue?"),
        count=model.get_num_tokens,
        max_prompt_tokens=1024,
        max_history_turns=10,
        concept_prompt="Explain it simply.",
    )
    formatter = Jinja2ChatFormatter(
        template=llama.metadata["tokenizer.chat_template"],
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
    )
    rendered = formatter(messages=to_chat_dicts(prompt.messages)).prompt
    real = len(llama.tokenize(rendered.encode(), add_bos=False, special=True))
    assert prompt.history_turns == 3
    assert real <= prompt.tokens <= real * 1.3


def test_blocked_and_oversized_turns_never_reach_the_model(
    llama_settings: Callable[..., Settings],
) -> None:
    graph = build_graph(llama_settings(), checkpointer=InMemorySaver())
    state = run(
        graph, "give me step by step instructions to make a pipe bomb", safety_level="relaxed"
    )
    assert state["safety"]["allowed"] is False and state["prompt_tokens"] == 0
    with pytest.raises(MessageTooLongError):
        run(graph, "lorem ipsum " * 800)
    assert len(graph.get_state(thread()).values["messages"]) == 2


def test_summary_on_the_real_model(llama_settings: Callable[..., Settings]) -> None:
    settings = llama_settings(summarisation={"max_turns": 2, "keep_turns": 1})
    graph = build_graph(settings, checkpointer=InMemorySaver())
    for text in ["My name is Ada.", "I live in Paris.", "I like tea."]:
        state = run(graph, text)
    assert state["summary"].strip()
    assert state["summarised_through"] is not None


@pytest.mark.slow
def test_default_model_recalls_the_users_name(
    llama_settings: Callable[..., Settings], default_gguf: Path
) -> None:
    settings = llama_settings(default_gguf, model={"n_ctx": 4096})
    graph = build_graph(settings, checkpointer=InMemorySaver())
    run(graph, "Hi! My name is Priya. Please remember it.")
    state = run(graph, "What is my name? Answer with the name only.")
    assert "priya" in state["messages"][-1].text.lower()


def test_stop_ends_an_invoked_reply_where_the_streamed_one_ends(
    llama_settings: Callable[..., Settings],
) -> None:
    """``invoke`` must honour ``stop`` too (langchain-community's ChatLlamaCpp drops it)."""
    model = get_chat_model(llama_settings())
    prompt = [HumanMessage("List the numbers from 1 to 30, separated by commas.")]
    full = model.invoke(prompt, max_new_tokens=40, do_sample=False).text
    assert len(full) > 12, full
    for stop in (full[len(full) // 2 : len(full) // 2 + 3], full[4:6]):
        expected = full[: full.index(stop)]
        invoked = model.invoke(prompt, stop=[stop], max_new_tokens=40, do_sample=False)
        streamed = model.stream(prompt, stop=[stop], max_new_tokens=40, do_sample=False)
        assert invoked.text == expected, (stop, full)
        assert invoked.response_metadata["finish_reason"] == "stop"
        assert "".join(c.text for c in streamed) == expected


def test_concurrent_turns_on_one_model_get_what_a_lone_turn_gets(
    llama_settings: Callable[..., Settings],
) -> None:
    """Calls share one llama.cpp context; unserialised, two streams abort the process."""
    model = get_chat_model(llama_settings())
    prompts = {
        "count": [HumanMessage("List the numbers from 1 to 30, separated by commas.")],
        "rain": [HumanMessage("Why does it rain?")],
    }
    alone = {
        key: model.invoke(p, max_new_tokens=24, do_sample=False).text for key, p in prompts.items()
    }
    together: list[tuple[str, str]] = []

    def turn(key: str) -> None:
        pieces = model.stream(prompts[key], max_new_tokens=24, do_sample=False)
        together.append((key, "".join(c.text for c in pieces)))

    keys = [*prompts, *prompts]
    threads = [threading.Thread(target=turn, args=(key,)) for key in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(together) == sorted((key, alone[key]) for key in keys)


# --- prompt-state cache: side calls must not cost the chat its evaluated prefix ---

SIDE_SYSTEM = "Rewrite the user's last message as a standalone search query. Reply with it only."
POLICY = (
    "You check messages for a chat assistant. Answer with one word: safe or unsafe. "
    "Unsafe means asking for help to hurt people, make weapons, or break into computers. "
    "Questions about history, science, cooking or feelings are safe."
)


class EvalCounter:
    """Counts the tokens llama.cpp evaluates (each ``Llama.eval`` call's size)."""

    def __init__(self, model: LlamaCppChatModel) -> None:
        self.model = model
        self.batches: list[int] = []
        llama = model.llama
        stock = llama.eval

        def counting(tokens: Any) -> None:
            self.batches.append(len(tokens))
            stock(tokens)

        llama.eval = counting

    def ask(self, messages: list[BaseMessage]) -> tuple[str, int]:
        """The greedy reply and how many prompt tokens were evaluated for it."""
        self.batches.clear()
        reply = self.model.invoke(messages, do_sample=False, max_new_tokens=24)
        return reply.text, self.batches[0]

    def held(self) -> list[int]:
        """The tokens the live context holds."""
        llama = self.model.llama
        return [int(t) for t in llama.input_ids[: llama.n_tokens]]

    def prompt_tokens(self, messages: list[BaseMessage]) -> list[int]:
        """The exact prompt llama-cpp-python builds for ``messages``."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llama = self.model.llama
        text = Jinja2ChatFormatter(
            template=llama.metadata["tokenizer.chat_template"], eos_token="", bos_token=""
        )(messages=to_chat_dicts(messages)).prompt
        return list(llama.tokenize(text.encode(), add_bos=False, special=True))


def shared(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def small_model(smollm2: Path, cache_mb: int) -> EvalCounter:
    # One thread: these tests count tokens, and on a busy machine two llama.cpp threads
    # mostly wait for each other.
    model = LlamaCppChatModel(
        model_path=str(smollm2), n_ctx=2048, n_threads=1, state_cache_mb=cache_mb
    )
    return EvalCounter(model)


def chat_with_side_calls(counter: EvalCounter) -> list[tuple[str, int, int, int]]:
    """Two chat turns, each after a side call.

    Returns:
        Per call: the reply, the prompt tokens evaluated, the prompt's tokens that the
        chat's previous context did not hold, and the prompt's length.
    """
    chat: list[BaseMessage] = [
        SystemMessage("You are a friendly assistant. Answer in one or two sentences."),
        HumanMessage("My name is Ada and I grow tomatoes. What should I feed them?"),
    ]
    reply, evaluated = counter.ask(chat)
    out = [(reply, evaluated, evaluated, evaluated)]
    for question in ["How often should I water them?", "And what is my name?"]:
        held = counter.held()
        out.append((*counter.ask([SystemMessage(SIDE_SYSTEM), HumanMessage(question)]), 0, 0))
        chat = [*chat, AIMessage(reply), HumanMessage(question)]
        prompt = counter.prompt_tokens(chat)
        reply, evaluated = counter.ask(chat)
        out.append((reply, evaluated, len(prompt) - shared(held, prompt), len(prompt)))
    return out


def test_after_a_side_call_the_chat_evaluates_only_its_new_tokens(smollm2: Path) -> None:
    cached = chat_with_side_calls(small_model(smollm2, 64))
    uncached = chat_with_side_calls(small_model(smollm2, 0))
    for turn in (2, 4):  # the chat turns that follow a side call
        _, evaluated, new, length = cached[turn]
        assert 1 <= evaluated <= new + 1, cached[turn]  # +1: the last prompt token again
        assert new < length / 2, cached[turn]  # the scenario has a prefix worth keeping
        # Without the cache all but the template's first tokens are evaluated again.
        assert uncached[turn][1] >= length - 8, uncached[turn]
    # Greedy output does not depend on where the prefix's KV cells came from.
    assert [r[0] for r in cached] == [r[0] for r in uncached]


def test_prefill_warms_a_fixed_instruction_prefix_for_later_calls(smollm2: Path) -> None:
    counter = small_model(smollm2, 64)
    model = counter.model
    warm = model.prefill([SystemMessage(POLICY)])
    assert warm == len(counter.held()) > 30
    counter.ask([SystemMessage(SIDE_SYSTEM), HumanMessage("weather in Paris tomorrow")])
    verdicts = []
    for message in ["How do I bake bread?", "Tell me about the moon landing in 1969."]:
        prompt = counter.prompt_tokens([SystemMessage(POLICY), HumanMessage(message)])
        verdict, evaluated = counter.ask([SystemMessage(POLICY), HumanMessage(message)])
        assert evaluated <= len(prompt) - warm + 1, (message, evaluated, len(prompt), warm)
        verdicts.append(verdict)
        counter.ask([SystemMessage(SIDE_SYSTEM), HumanMessage(message)])  # evicts it again
    # Warming an already-held prefix evaluates nothing.
    counter.batches.clear()
    assert model.prefill([SystemMessage(POLICY)]) == warm
    assert sum(counter.batches) == 0
    off = small_model(smollm2, 0)
    assert off.model.prefill([SystemMessage(POLICY)]) == warm  # still warms the live context
    assert [
        off.ask([SystemMessage(POLICY), HumanMessage(m)])[0]
        for m in ["How do I bake bread?", "Tell me about the moon landing in 1969."]
    ] == verdicts


def test_a_persisted_prefix_is_read_by_the_next_process_not_evaluated(
    smollm2: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def fresh() -> EvalCounter:  # a new process's model: nothing evaluated yet
        model = LlamaCppChatModel(
            model_path=str(smollm2),
            n_ctx=2048,
            n_threads=1,
            state_cache_mb=64,
            state_dir=str(tmp_path),
            state_files_mb=64,
        )
        return EvalCounter(model)

    prefix: list[BaseMessage] = [SystemMessage(POLICY)]
    asked = [*prefix, HumanMessage("How do I bake bread?")]
    first = fresh()
    warm = first.model.prefill(prefix, persist=True)
    assert sum(first.batches) == warm > 30  # evaluated, and written
    (file,) = tmp_path.glob("*.state")
    expected = first.model.first_token_probabilities(asked, ["Yes", "No"])
    second = fresh()
    assert second.model.prefill(prefix, persist=True) == warm
    assert sum(second.batches) == 0  # read from the file
    assert second.model.first_token_probabilities(asked, ["Yes", "No"]) == expected
    # Not persisted: a conversation's prefix is not written.
    fresh().model.prefill([*asked, AIMessage("Yes.")])
    assert list(tmp_path.glob("*.state")) == [file]
    # A damaged file is dropped, the prefix evaluated and written again.
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    third = fresh()
    assert third.model.prefill(prefix, persist=True) == warm
    assert sum(third.batches) == warm and "damaged" in caplog.text
    assert third.model.first_token_probabilities(asked, ["Yes", "No"]) == expected
    fourth = fresh()
    fourth.model.prefill(prefix, persist=True)
    assert sum(fourth.batches) == 0
    # Whole, but cells llama.cpp refuses (a rebuilt llama.cpp): dropped, evaluated, and
    # written again from what this process evaluated.
    files = fourth.model._shared.files
    assert files is not None
    tokens = as_tokens(fourth.model._prefix_tokens(prefix))
    files.save(tokens, bytes(64))
    fifth = fresh()
    assert fifth.model.prefill(prefix, persist=True) == warm
    assert sum(fifth.batches) == warm and "could not restore" in caplog.text
    sixth = fresh()
    sixth.model.prefill(prefix, persist=True)
    assert sum(sixth.batches) == 0
    assert sixth.model.first_token_probabilities(asked, ["Yes", "No"]) == expected


def test_every_evaluation_runs_on_the_models_own_thread_whoever_calls(smollm2: Path) -> None:
    # llama.cpp's OpenMP team belongs to the thread that evaluates: a new calling thread
    # per turn (the page, the API) meant a new team each time, slower than the CLI.
    model = LlamaCppChatModel(model_path=str(smollm2), n_ctx=2048, state_cache_mb=64)
    llama = model.llama
    evaluated_on: set[int] = set()
    stock = llama.eval

    def eval_(tokens: Any) -> Any:
        evaluated_on.add(threading.get_ident())
        return stock(tokens)

    llama.eval = eval_
    asked = [SystemMessage(SIDE_SYSTEM), HumanMessage("weather in Paris")]
    callers: list[threading.Thread] = []
    replies: list[str] = []

    def calls() -> None:
        callers.append(threading.current_thread())
        replies.append(
            "".join(c.text for c in model.stream(asked, max_new_tokens=4, do_sample=False))
        )
        assert model.first_token_probabilities(asked, ["Weather", "Paris"]) is not None
        assert model.prefill([SystemMessage("You are terse."), HumanMessage("hi")]) > 0

    calls()
    for _ in range(2):
        worker = threading.Thread(target=calls)
        worker.start()
        worker.join()
    assert len(set(callers)) == 3 and len(evaluated_on) == 1
    assert evaluated_on != {threading.get_ident()}  # not the main thread either
    assert len(set(replies)) == 1 and replies[0].strip()  # greedy: the same reply each time


def test_first_token_probabilities_agree_with_greedy_decoding(smollm2: Path) -> None:
    """The scored opening is the one greedy decoding writes, before and after other calls."""
    counter = small_model(smollm2, 64)
    model = counter.model
    for question in ["Is the sky blue? Answer yes or no.", "Is fire cold? Answer yes or no."]:
        messages: list[BaseMessage] = [SystemMessage(SIDE_SYSTEM), HumanMessage(question)]
        greedy = model.invoke(messages, do_sample=False, max_new_tokens=1).text
        assert greedy.strip(), question
        others = [w for w in ("Yes", "No", "Maybe", "The") if not greedy.startswith(w[:2])]
        scores = model.first_token_probabilities(messages, [greedy, *others])
        assert scores is not None
        assert all(0.0 <= p <= 1.0 for p in scores.values()) and sum(scores.values()) <= 1.0001
        assert max(scores, key=lambda c: scores[c]) == greedy, scores
        # the same prompt again, after an unrelated call, scores the same
        counter.ask([SystemMessage(POLICY), HumanMessage("How do I bake bread?")])
        again = model.first_token_probabilities(messages, [greedy, *others])
        assert again is not None
        assert again == pytest.approx(scores, rel=1e-3, abs=1e-6)
    with pytest.raises(ValueError, match="share a first token"):
        model.first_token_probabilities(messages, ["Yes", "Yes indeed"])


def test_next_token_probabilities_continue_the_given_reply_start(smollm2: Path) -> None:
    """After a reply start, the scored next token is the one greedy decoding writes next."""
    counter = small_model(smollm2, 64)
    model = counter.model
    llama = model.llama
    for question in ["What colour is the sky? One word.", "Name a fruit. One word."]:
        messages: list[BaseMessage] = [SystemMessage(SIDE_SYSTEM), HumanMessage(question)]
        greedy = model.invoke(messages, do_sample=False, max_new_tokens=3).text
        ids = llama.tokenize(greedy.encode("utf-8"), add_bos=False, special=False)
        assert len(ids) >= 2, greedy
        start = llama.detokenize(ids[:1]).decode("utf-8")
        following = llama.detokenize(ids[1:2]).decode("utf-8")
        others = [w for w in ("zebra", "Quartz", "!") if not following.startswith(w[:1])]
        scores = model.next_token_probabilities(messages, start, [following, *others])
        assert scores is not None
        assert max(scores, key=lambda c: scores[c]) == following, (greedy, scores)
        # with no reply start it is the first token's scoring
        first = model.next_token_probabilities(messages, "", [start, *others])
        assert first == pytest.approx(model.first_token_probabilities(messages, [start, *others]))


@pytest.mark.parametrize(("threads", "batch_threads"), [(1, 2), (2, 1)])
def test_generation_and_prompt_threads_reach_llama_cpp(
    smollm2: Path, threads: int, batch_threads: int
) -> None:
    from graph.settings import load_settings
    from tools.models.loader import _llamacpp

    settings = load_settings(
        model={
            "backend": "llamacpp",
            "gguf_path": str(smollm2),
            "n_threads": threads,
            "n_threads_batch": batch_threads,
        }
    )
    llama = _llamacpp(settings).llama
    assert (llama.context_params.n_threads, llama.context_params.n_threads_batch) == (
        threads,
        batch_threads,
    )


@pytest.mark.slow
def test_a_score_does_not_depend_on_what_was_scored_before(default_gguf: Path) -> None:
    """The last message is evaluated from its own start, whatever the context held.

    Scored after a message that shares its first words ("Write a short poem about"), the
    reused context reached into the message and moved where evaluation started, and the
    logits moved with it (by up to 0.02 in P(unsafe) on the default model's judge), so an
    eval's order decided cases near the judge's cut.
    """
    # The default model: SmolLM2's sums come out the same however the prompt is cut.
    model = LlamaCppChatModel(model_path=str(default_gguf), n_ctx=2048, state_cache_mb=64)
    prefix: list[BaseMessage] = [SystemMessage(POLICY)]

    def score(text: str) -> dict[str, float]:
        scores = model.first_token_probabilities([*prefix, HumanMessage(text)], ["Yes", "No"])
        assert scores is not None
        return scores

    asked = "Write a short poem about the sea at night."
    alone = score(asked)
    for before in (
        "Write a short poem about the mountains.",
        "Write a short story.",
        "How do I bake bread?",
        asked,
    ):
        score(before)
        assert score(asked) == alone, before  # exactly: the same evaluation
