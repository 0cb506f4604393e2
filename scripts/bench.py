"""Benchmark the graph against its raw baseline, measured in the same run.

Prints:
  1. decode tokens/s of the graph vs. a raw llama.cpp call on the same prompt (ratio);
  2. non-model overhead per turn (ms), with an instant fake model;
  3. time to first token at turn 1 vs. turn 20 of one conversation (ratio), and its p95
     vs. its median over the whole chat (the turns right after a summary are the slow
     ones when the new prompt prefix is not warmed in advance);
  4. at the end of that 30-turn chat: prompt size vs. full history, and recall of turn 1;
  5. per-turn checkpoint overhead of each memory backend (memory, sqlite, redis) against
     the same turns with no checkpointer, on an instant fake model;
  6. document ingestion throughput (chunks/s) on a generated corpus, embedding time apart
     from the rest, against embedding the same chunks alone;
  7. document query latency p50/p95 at 1k and 10k chunks: the hybrid search (vectors
     and BM25 keywords fused, the default) with the query embedding, and its parts: the
     embedding, the vector half against a raw chromadb ``collection.query`` with the same
     vector, the keyword half, and building the keyword index from the store;
  8. long-term memory: what recalling costs per turn (embedding the message and searching
     a user's 500 memories in the SQLite store), and a turn with long-term memory against
     the same turn without it, on an instant fake model;
  9. routing: what routing by meaning adds to a turn (the graph with prompts.semantic on
     against off, instant fake model), the router alone (embedding the message, then the
     decision) against the aliases alone, and embedding the examples once per process;
 10. the input check's cost per turn on the chat model: time to first token of the same
     everyday messages with every safety layer (semantic, classifier, judge on uncertain
     messages) against the lexical layer alone, how often the judge ran, and what one
     judge call costs;
 11. cold start: `assistant --help` (the CLI's import time), and a one-shot
     `assistant chat -m "Say hi in three words."` from its start to its first reply token,
     with what its log says it did on the way (model load, embeddings, ...);
 12. the HTTP API's overhead per request (median) over the graph alone, on an instant
     fake model: the same turn through uvicorn on 127.0.0.1 (httpx; streamed and not)
     against ``stream_turn`` called directly;
 13. the streaming masker on text without spaces: 1,200 CJK characters, and a mixed
     Latin/emoji/Arabic reply of about 1,200 characters, fed one character per chunk,
     against masking the same reply once as it is stored (``mask_output``).

Usage: python scripts/bench.py [--model default|smollm2] [--turns 20] [--tokens 96]
       python scripts/bench.py --only memory      (5 and 8, no chat model)
       python scripts/bench.py --only chat        (3 and 4: the 30-turn chat)
       python scripts/bench.py --only rag         (7)
       python scripts/bench.py --only routing     (9)
       python scripts/bench.py --only safety      (10) [--model default|smollm2]
       python scripts/bench.py --only decode      (1: just the graph/raw decode ratio)
       python scripts/bench.py --only cold        (11) [--model default|smollm2]
       python scripts/bench.py --only api         (12, no chat model)
       python scripts/bench.py --only stream      (13, no model)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANGSMITH_TRACING", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from graph.settings import Settings, load_settings
from tools.models import FakeChatModel, LlamaCppChatModel, get_chat_model, to_chat_dicts
from tools.models.files import DEFAULT_MODEL, prepare_split_model, smollm2_path
from tools.prompting import REPLY_PRIMER, build_prompt, message_tokens, system_text
from tools.routing import load_system_prompt

PROMPT = "List the numbers from 1 to 60, separated by commas, and nothing else."


# The fake model answers every prompt with its canned reply, so it cannot judge (it
# would fail the judge's canaries and warn once per graph): the fake-model parts run the
# cheaper safety layers only.
NO_JUDGE = {"judge": "off"}


def gguf(choice: str, data_dir: Path) -> Path:
    if choice == "smollm2":
        return smollm2_path()
    cache = Path.home() / ".cache" / "local-assistant-tests"
    return prepare_split_model(cache, DEFAULT_MODEL)


def settings_for(path: Path, data_dir: Path, tokens: int) -> Settings:
    return load_settings(
        data_dir=str(data_dir),
        model={"backend": "llamacpp", "gguf_path": str(path)},
        generation={"do_sample": False, "max_new_tokens": tokens},
    )


def raw_run(model: LlamaCppChatModel, messages: list[Any], tokens: int) -> tuple[float, int]:
    """Decode tokens/s of a bare llama.cpp streaming call."""
    llama = model.llama
    start = time.perf_counter()
    first = last = 0.0
    text = ""
    for chunk in llama.create_chat_completion(
        messages=to_chat_dicts(messages), stream=True, max_tokens=tokens, temperature=0.0
    ):
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            last = time.perf_counter() - start
            first = first or last
            text += piece
    n = model.get_num_tokens(text)
    return (n - 1) / (last - first), n


def graph_run(
    graph: Any, model: LlamaCppChatModel, thread: str, streamed: bool
) -> tuple[float, int, float]:
    """Decode tokens/s and seconds to the first token of one turn through the graph.

    ``streamed`` False: as ``assistant chat`` takes it (apps.turns.run_turn: the graph in
    the calling thread, each token straight to a callback). True: as the web UI and the
    API take it (apps.turns.stream_turn: the turn in a worker thread, each token across
    one queue to the caller).
    """
    from apps.turns import run_turn, stream_turn
    from graph.context import Context
    from tools.memory.locks import FileThreadLocks

    times: list[float] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as locks:
        turn = (
            graph,
            FileThreadLocks(Path(locks)),
            thread,
            PROMPT,
            Context(safety_level="relaxed"),
        )
        if streamed:
            state: dict[str, Any] = {}
            for kind, value in stream_turn(*turn, owner="bench", machine_user="bench", wait=0):
                if kind == "token":
                    times.append(time.perf_counter() - start)
                else:
                    state = value
        else:
            state = run_turn(
                *turn,
                owner="bench",
                machine_user="bench",
                wait=0,
                on_token=lambda token: times.append(time.perf_counter() - start),
            )
    n = model.get_num_tokens(state["messages"][-1].text)
    return (n - 1) / (times[-1] - times[0]), n, times[0]


def bench_throughput(settings: Settings, reps: int) -> None:
    model = get_chat_model(settings)
    assert isinstance(model, LlamaCppChatModel)
    graph = build_graph(settings, checkpointer=InMemorySaver())
    prompt = build_prompt(
        system=system_text(load_system_prompt(), ""),
        history=[],
        new_message=HumanMessage(PROMPT),
        count=model.get_num_tokens,
        max_prompt_tokens=settings.context.max_prompt_tokens,
        max_history_turns=0,
    ).messages
    raw, cli, messages = [], [], []
    n_raw = n_graph = 0
    order = ("raw", "cli", "messages")
    for i in range(reps):  # interleaved, rotating order, so drift affects all alike
        for which in order[i % 3 :] + order[: i % 3]:
            if which == "raw":
                rate, n_raw = raw_run(model, prompt, settings.generation.max_new_tokens)
                raw.append(rate)
            elif which == "cli":
                rate, n_graph, _ = graph_run(graph, model, f"tp-cli-{i}", streamed=False)
                cli.append(rate)
            else:
                rate, n_graph, _ = graph_run(graph, model, f"tp-stream-{i}", streamed=True)
                messages.append(rate)
    r, g, m = statistics.median(raw), statistics.median(cli), statistics.median(messages)
    print(
        f"1. decode tokens/s   raw llama.cpp {r:6.1f}   graph {g:6.1f}   "
        f"ratio {g / r:.3f}  (goal >= 0.95; {n_raw} vs {n_graph} tokens, median of {reps}; "
        "the graph as `assistant chat` streams it)"
    )
    print(f"   as the web UI and the API stream it (stream_turn) {m:6.1f}   ratio {m / r:.3f}")


def cold_start(path: Path, data_dir: Path, reps: int = 3) -> None:
    """`assistant --help` wall time, and `assistant chat -m` from start to first token."""
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "PYTHONUNBUFFERED": "1",
        "ASSISTANT_DATA_DIR": str(data_dir / "cold"),
        "ASSISTANT_MODEL__BACKEND": "llamacpp",
        "ASSISTANT_MODEL__GGUF_PATH": str(path),
        "ASSISTANT_LOG_LEVEL": "INFO",
    }
    cli = [sys.executable, "-m", "apps.cli"]
    helps = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run([*cli, "--help"], env=env, cwd=root, capture_output=True, check=True)
        helps.append(time.perf_counter() - start)

    def first_token() -> tuple[float, float, list[tuple[float, str]]]:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*cli, "chat", "-m", "Say hi in three words."],
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        lines: list[tuple[float, str]] = []
        errors = proc.stderr

        def read_log() -> None:
            for line in errors:
                lines.append((time.perf_counter() - start, line.rstrip()))

        reader = threading.Thread(target=read_log, daemon=True)
        reader.start()
        first = float("nan")
        while char := proc.stdout.read(1):
            if not char.isspace():
                first = time.perf_counter() - start
                break
        proc.stdout.read()
        proc.wait()
        reader.join()
        return first, time.perf_counter() - start, lines

    first_token()  # the first run of a new data directory creates its stores
    runs = [first_token() for _ in range(reps)]
    firsts = [r[0] for r in runs]
    median = statistics.median(firsts)
    _, whole, log_lines = runs[firsts.index(median)] if median in firsts else runs[0]
    print(
        f"11. cold start: `assistant --help` {statistics.median(helps):.2f} s (goal < 1); "
        f"`assistant chat -m` to its first token {median:.1f} s (goal <= 8; whole command "
        f"{whole:.1f} s; median of {reps}: {', '.join(f'{f:.1f}' for f in firsts)})"
    )
    for at, line in log_lines:
        if line.startswith(("INFO", "WARNING")):
            print(f"   {at:5.1f} s  {line[:110]}")


def bench_overhead(data_dir: Path, turns: int) -> None:
    settings = load_settings(data_dir=str(data_dir), model={"backend": "fake"}, safety=NO_JUDGE)
    model = FakeChatModel(reply="ok")
    graph = build_graph(settings, checkpointer=InMemorySaver(), model=model)
    config: RunnableConfig = {"configurable": {"thread_id": "overhead"}}
    graph.invoke({"messages": [("user", "warm up")]}, config)
    times, model_times = [], []
    for i in range(turns):
        start = time.perf_counter()
        graph.invoke({"messages": [("user", f"question number {i}?")]}, config)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.invoke(model.calls[-1])
        model_times.append(time.perf_counter() - start)
    per_turn = statistics.median(times) * 1000
    raw = statistics.median(model_times) * 1000
    print(
        f"2. non-model overhead per turn {per_turn - raw:6.2f} ms   "
        f"(graph turn {per_turn:.2f} ms - fake model call {raw:.2f} ms; median of {turns})"
    )


def bench_memory(data_dir: Path, threads: int) -> None:
    """Per-turn cost of each checkpointer, over two-turn chats, against no checkpointer."""
    from langchain_core.messages import AIMessage

    from tests.support import redis_server
    from tools.memory import open_checkpointer

    def turns(graph: Any, stateless: bool) -> list[float]:
        times = []
        for t in range(threads):
            config = {"configurable": {"thread_id": f"bench-{t}"}}
            first = [("user", f"Hello, I am user {t}.")]
            second: list[Any] = [("user", "What did I say?")]
            if stateless:  # the same messages the checkpointer would have loaded
                second = [*first, AIMessage("ok"), *second]
            for messages in (first, second):
                start = time.perf_counter()
                graph.invoke({"messages": messages}, config)
                times.append(time.perf_counter() - start)
        return times

    server = redis_server.start()
    try:
        backends = {
            "memory": {"backend": "memory"},
            "sqlite": {"backend": "sqlite"},
            "redis": {"backend": "redis", "redis_url": server.url, "fallback": "none"},
        }
        base_settings = load_settings(
            data_dir=str(data_dir), model={"backend": "fake"}, safety=NO_JUDGE
        )
        model = FakeChatModel(reply="ok")
        plain = build_graph(base_settings, model=model)
        turns(plain, True)  # warm-up: imports, prompt files, token caches
        base = statistics.median(turns(plain, True)) * 1000
        line = f"5. per-turn checkpoint overhead (no checkpointer: {base:.2f} ms/turn)"
        for name, memory in backends.items():
            settings = load_settings(
                data_dir=str(data_dir), model={"backend": "fake"}, safety=NO_JUDGE, memory=memory
            )
            with open_checkpointer(settings) as saver:
                graph = build_graph(settings, checkpointer=saver, model=model)
                per_turn = statistics.median(turns(graph, False)) * 1000
            line += f"\n   {name:7s} +{per_turn - base:6.2f} ms/turn  ({per_turn:.2f} ms)"
        print(line + f"  (median of {threads * 2} turns each)")
    finally:
        server.stop()


def first_token(graph: Any, config: Any, text: str) -> float:
    """Seconds until the first reply token; the turn is run to the end."""
    start = time.perf_counter()
    first = float("nan")
    for chunk, meta in graph.stream({"messages": [("user", text)]}, config, stream_mode="messages"):
        generated = meta["langgraph_node"] == "generate" and isinstance(chunk, AIMessageChunk)
        if generated and chunk.text and first != first:  # first is NaN until set
            first = time.perf_counter() - start
    return first


def bench_long_chat(settings: Settings, turns: int) -> None:
    """TTFT over one conversation, then recall of turn-1 facts and the prompt size."""
    from langgraph.store.memory import InMemoryStore

    from tools.memory.store import index_config

    model = get_chat_model(settings)
    assert isinstance(model, LlamaCppChatModel)
    model.llama.reset()  # turn 1 starts from an empty KV cache, as in a fresh process
    # The product path: long-term memory on (recall before the reply, remember after).
    store = InMemoryStore(index=index_config())
    graph = build_graph(settings, checkpointer=InMemorySaver(), store=store)
    config = {"configurable": {"thread_id": "long"}}
    texts = ["Hi! My name is Ada and my lucky number is 42. Reply with one short sentence."]
    texts += [
        f"Give me one short tip about {topic}."
        for topic in [
            "tea",
            "sleep",
            "running",
            "python",
            "git",
            "maps",
            "bread",
            "chess",
            "birds",
            "rain",
            "music",
            "paper",
            "glass",
            "salt",
            "wool",
            "ice",
            "clocks",
            "boats",
            "bees",
            "stars",
            "soap",
            "rope",
            "kites",
            "wheels",
            "lamps",
            "honey",
            "sand",
            "moss",
            "fog",
        ]
    ]
    texts = [*texts[: turns - 1], "What is my name, and what is my lucky number?"]
    ttft: list[float] = []
    after_summary: list[int] = []
    summary = ""
    for number, text in enumerate(texts, 1):
        ttft.append(first_token(graph, config, text))
        if graph.get_state(config).values["summary"] != summary:  # type: ignore[arg-type]
            summary = graph.get_state(config).values["summary"]  # type: ignore[arg-type]
            after_summary.append(number + 1)
    values = graph.get_state(config).values  # type: ignore[arg-type]
    answer = values["messages"][-1].text
    # The prompt the last turn would have needed without summarising or trimming: the
    # base system prompt and every message, counted the way build_prompt counts them.
    everything = [SystemMessage(load_system_prompt()), *values["messages"][:-1]]
    history = sum(message_tokens(m, model.get_num_tokens) for m in everything) + REPLY_PRIMER
    n = min(20, len(ttft))
    print(
        f"3. time to first token  turn 1 {ttft[0] * 1000:7.0f} ms   turn {n} "
        f"{ttft[n - 1] * 1000:7.0f} ms   ratio {ttft[n - 1] / ttft[0]:.2f}  (goal <= 1.5)"
    )
    marks = [f"{t * 1000:.0f}{'*' if i in after_summary else ''}" for i, t in enumerate(ttft, 1)]
    print("   per turn (ms; * = right after a summary): " + " ".join(marks))
    median = statistics.median(ttft)
    p95 = statistics.quantiles(ttft, n=20, method="inclusive")[18]
    slow = [ttft[i - 1] for i in after_summary if i <= len(ttft)]
    after = f"median {statistics.median(slow) * 1000:.0f} ms" if slow else "no summary"
    print(
        f"   over all {len(ttft)} turns: median {median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"p95/median {p95 / median:.2f} (goal <= 2); right after a summary: {after}"
    )
    print(
        f"4. after {len(texts)} turns: prompt {values['prompt_tokens']} tokens vs. "
        f"full-history prompt {history} tokens "
        f"({1 - values['prompt_tokens'] / history:.0%} smaller; goal >= 50%)"
    )
    ok = "ada" in answer.lower() and "42" in answer
    print(f"   recall of turn-1 facts: {'OK' if ok else 'MISSED'}: {answer.strip()[:120]!r}")


def bench_recall(data_dir: Path, turns: int = 60, stored: int = 500) -> None:
    """What long-term memory costs per turn, lookup and whole turn, on a fake model."""
    from tools.memory.long_term import has_memories, remember_turn, search_memories
    from tools.memory.store import open_sqlite_store
    from tools.models.embeddings import get_embeddings

    settings = load_settings(data_dir=str(data_dir), model={"backend": "fake"}, safety=NO_JUDGE)
    rnd = random.Random(5)
    get_embeddings().embed_documents(["warm up"] * 4)
    things = ["locker", "bike", "gate", "safe"]
    with open_sqlite_store(settings) as store:
        for n in range(stored):  # a user with a history: past turns and some facts
            fact = f"My {rnd.choice(things)} code is {n}. " if n % 10 == 0 else ""
            message = fact + synthetic_sentence(rnd)
            remember_turn(
                store, "bench", message=message, reply="ok", thread_id="old", message_id=f"m{n}"
            )
        questions = [f"Question {n}: {synthetic_sentence(rnd)}" for n in range(turns * 3)]
        # a) the lookup alone, as recall does it (a new message each time: no cache hit)
        lookups = []
        for question in questions[:turns]:
            start = time.perf_counter()
            if has_memories(store, "bench", "turns"):
                search_memories(store, "bench", question, kinds=("turns",), limit=3)
            lookups.append(time.perf_counter() - start)
        # b) whole turns on an instant model, long-term memory on vs. off, interleaved
        model = FakeChatModel(reply="ok")
        graphs = {
            "on": build_graph(settings, checkpointer=InMemorySaver(), store=store, model=model),
            "off": build_graph(settings, checkpointer=InMemorySaver(), model=model),
        }
        times: dict[str, list[float]] = {"on": [], "off": []}
        for n in range(turns):
            for i, name in enumerate(("on", "off") if n % 2 else ("off", "on")):
                start = time.perf_counter()
                graphs[name].invoke(
                    {"messages": [("user", questions[turns + 2 * n + i])]},
                    {"configurable": {"thread_id": f"recall-{n}"}},
                    context={"user_id": "bench"},
                )
                times[name].append(time.perf_counter() - start)
    look50, look95 = percentiles(lookups)
    on50, off50 = (statistics.median(times[k]) * 1000 for k in ("on", "off"))
    print(
        f"8. long-term memory lookup (embed the message, search {stored} memories in SQLite): "
        f"{look50:.1f} ms median, {look95:.1f} ms p95 (goal <= 30 ms median)"
        f"\n   whole turn (fake instant model): {on50:.1f} ms with long-term memory vs. "
        f"{off50:.1f} ms without (+{on50 - off50:.1f} ms: the lookup, and keeping the turn "
        f"after the reply; median of {turns})"
    )


class TimedEmbeddings(Embeddings):
    """Wraps the embedding model and adds up the time spent in it."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.document_seconds = 0.0
        self.document_texts: list[str] = []
        self.query_seconds: list[float] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        start = time.perf_counter()
        vectors = self.inner.embed_documents(texts)
        self.document_seconds += time.perf_counter() - start
        self.document_texts.extend(texts)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        start = time.perf_counter()
        vector = self.inner.embed_query(text)
        self.query_seconds.append(time.perf_counter() - start)
        return vector


_PEOPLE = [
    "The parish council", "Our treasurer", "The harbour master", "A retired engineer",
    "The library volunteers", "The head gardener", "The school governors", "Local bakers",
    "The cycling club", "The museum curator", "Two fishermen", "The district nurse",
    "The brass band", "The mill owner", "A visiting surveyor", "The choir",
]  # fmt: skip
_ACTS = [
    "repaired", "inspected", "painted", "rebuilt", "measured", "sold", "moved", "opened",
    "closed", "insured", "photographed", "catalogued", "cleaned", "surveyed", "restored",
]  # fmt: skip
_THINGS = [
    "the footbridge", "the old granary", "the lifeboat station", "the bandstand",
    "the west window", "the allotment sheds", "the weir", "the ferry landing",
    "the village pump", "the cricket pavilion", "the signal box", "the tithe barn",
    "the lime kilns", "the market cross", "the toll house", "the water tower",
]  # fmt: skip
_WHEN = [
    "in the spring of {year}", "during the storms of {year}", "before the fair in {year}",
    "for {n} pounds", "with {n} volunteers", "in {n} days", "after a vote of {n} to {m}",
    "at a cost of {n} guineas", "while the river was at {n} centimetres",
]  # fmt: skip


def synthetic_sentence(rnd: random.Random) -> str:
    """One varied, plausible sentence (no two documents embed alike)."""
    when = rnd.choice(_WHEN).format(
        year=rnd.randint(1700, 2024), n=rnd.randint(2, 900), m=rnd.randint(1, 9)
    )
    return f"{rnd.choice(_PEOPLE)} {rnd.choice(_ACTS)} {rnd.choice(_THINGS)} {when}."


def synthetic_paragraph(rnd: random.Random, sentences: int) -> str:
    return " ".join(synthetic_sentence(rnd) for _ in range(sentences))


def write_bench_documents(folder: Path, files: int, seed: int = 7) -> list[Path]:
    """Markdown, text, HTML and two-page PDF files of generated prose (~3.5 KB each)."""
    from tests.support.pdfgen import make_pdf

    rnd = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        paragraphs = [synthetic_paragraph(rnd, rnd.randint(4, 7)) for _ in range(6)]
        kind = ("md", "txt", "html", "pdf")[i % 4]
        path = folder / f"doc{i:03d}.{kind}"
        if kind == "md":
            path.write_text(
                f"# Notes {i}\n\n"
                + "\n\n".join(f"## Part {j}\n\n{p}" for j, p in enumerate(paragraphs)),
                encoding="utf-8",
            )
        elif kind == "txt":
            path.write_text("\n\n".join(paragraphs), encoding="utf-8")
        elif kind == "html":
            body = "".join(f"<h2>Part {j}</h2><p>{p}</p>" for j, p in enumerate(paragraphs))
            path.write_text(
                f"<html><head><title>Notes {i}</title></head><body>{body}</body></html>",
                encoding="utf-8",
            )
        else:
            make_pdf(["\n\n".join(paragraphs[:3]), "\n\n".join(paragraphs[3:])], path)
        paths.append(path)
    return paths


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    cuts = statistics.quantiles(seconds, n=20, method="inclusive")
    return statistics.median(seconds) * 1000, cuts[18] * 1000


def bench_rag(data_dir: Path, files: int = 16, rounds: int = 3, queries: int = 60) -> None:
    """Ingestion throughput, and query latency at 1k and 10k chunks, with raw baselines."""
    import chromadb
    from chromadb.config import Settings as ChromaClientSettings

    import tools.documents.store as store_module
    from tests.support.rag_corpus import NAMES_AND_NUMBERS, NEAR_UNANSWERABLE, QAS, UNANSWERABLE
    from tools.documents.ingest import ingest
    from tools.documents.store import Chunk, DocumentStore, store_path
    from tools.models.embeddings import get_embeddings

    settings = load_settings(  # always an embedded store in the temporary directory
        data_dir=str(data_dir),
        model={"backend": "fake"},
        safety=NO_JUDGE,
        chroma={"url": None, "path": str(data_dir / "chroma")},
    )
    start = time.perf_counter()
    model = get_embeddings()
    loaded = time.perf_counter() - start
    model.embed_documents([synthetic_paragraph(random.Random(1), 6)] * 8)  # warm up

    # 6. Ingestion: the product path (load, chunk, embed, upsert) into a new collection,
    # then embedding the same chunks alone; median of three rounds, so drift affects both.
    paths = write_bench_documents(data_dir / "bench-docs", files)
    totals, embeds, raws = [], [], []
    for round_ in range(rounds):
        timed = TimedEmbeddings(model)
        store = DocumentStore(settings, f"bench-ingest-{round_}", embeddings=timed)
        report = ingest(store, paths)
        assert not report.failed and not report.skipped, report
        totals.append(report.seconds)
        embeds.append(timed.document_seconds)
        start = time.perf_counter()
        model.embed_documents(timed.document_texts)
        raws.append(time.perf_counter() - start)
    n = report.chunks_written
    total, embed, raw = (statistics.median(x) for x in (totals, embeds, raws))
    rest = statistics.median(t - e for t, e in zip(totals, embeds, strict=True))
    size = statistics.mean(len(t) for t in timed.document_texts)
    print(
        f"6. ingestion {n / total:6.1f} chunks/s   raw embedding {n / raw:6.1f} chunks/s   "
        f"ratio {raw / total:.3f}  ({n} chunks of ~{size:.0f} chars from {len(paths)} "
        f"md/txt/html/pdf files, median of {rounds}; model loaded in {loaded:.1f} s)"
        f"\n   {total:.1f} s = embedding {embed:.1f} s (alone: {raw:.1f} s) + loading, "
        f"chunking and storing {rest:.2f} s ({rest / n * 1000:.1f} ms/chunk)"
    )

    # 7. Query latency: one store filled with one-sentence chunks, 1k then 9k more.
    timed = TimedEmbeddings(model)
    store = DocumentStore(settings, "bench-query", embeddings=timed)
    client = chromadb.PersistentClient(
        path=str(store_path(settings)), settings=ChromaClientSettings(anonymized_telemetry=False)
    )
    texts = [qa.question for qa in QAS] + UNANSWERABLE + NEAR_UNANSWERABLE
    texts += [query for query, _ in NAMES_AND_NUMBERS]
    questions = [texts[i % len(texts)] for i in range(queries)]
    vectors = [model.embed_query(q) for q in questions]
    k = settings.retrieval.k
    rnd = random.Random(11)
    filled = 0
    print(f"7. query latency, k={k}, median and p95 of {queries} queries (ms)")
    for target in (1_000, 10_000):
        timed.document_seconds = 0.0
        added = target - filled
        start = time.perf_counter()
        while filled < target:
            source = str(data_dir / f"synthetic-{filled // 100:03d}.txt")
            chunks = [
                Chunk(
                    id=f"s{filled + i}",
                    text=synthetic_sentence(rnd),
                    metadata={"name": Path(source).name, "kind": "text", "chunk": i},
                )
                for i in range(100)
            ]
            store.replace_source(source, chunks)
            filled += 100
        fill_seconds = time.perf_counter() - start
        assert store.count() == target
        collection = client.get_collection("bench-query", embedding_function=None)
        store_module._KEYWORDS.clear()  # as in a new process: the index is built first
        begin = time.perf_counter()
        index = store._keywords(collection)
        build = time.perf_counter() - begin
        timed.query_seconds.clear()
        whole: list[float] = []
        ours: list[float] = []
        theirs: list[float] = []
        fused: list[float] = []
        keywords: list[float] = []
        for i, (question, vector) in enumerate(zip(questions, vectors, strict=True)):
            order = ("store", "raw", "hybrid", "bm25")
            for which in order if i % 2 == 0 else order[::-1]:  # interleaved, both orders
                begin = time.perf_counter()
                if which == "store":
                    store.search_by_vector(vector, k)
                    ours.append(time.perf_counter() - begin)
                elif which == "raw":
                    collection.query(
                        query_embeddings=[vector],  # type: ignore[arg-type]
                        n_results=k,
                        include=["documents", "metadatas", "distances"],
                    )
                    theirs.append(time.perf_counter() - begin)
                elif which == "hybrid":
                    store.hybrid_search(question, vector, k)
                    fused.append(time.perf_counter() - begin)
                else:
                    index.search(question, store_module.CANDIDATES)
                    keywords.append(time.perf_counter() - begin)
            begin = time.perf_counter()
            store.search(question, k)
            whole.append(time.perf_counter() - begin)
        (t50, t95), (e50, e95) = percentiles(whole), percentiles(timed.query_seconds)
        (s50, s95), (r50, r95) = percentiles(ours), percentiles(theirs)
        (h50, h95), (w50, w95) = percentiles(fused), percentiles(keywords)
        print(
            f"   {target:>6,} chunks  search() {t50:6.1f} / {t95:6.1f}  = embed query "
            f"{e50:5.1f} / {e95:5.1f}  + hybrid search {h50:5.2f} / {h95:5.2f}"
            f"\n   {'':14s}vector half {s50:5.2f} / {s95:5.2f} (raw collection.query "
            f"{r50:5.2f} / {r95:5.2f}, ratio {s50 / r50:.2f})   keyword half (BM25) "
            f"{w50:5.2f} / {w95:5.2f}"
            f"\n   {'':14s}keyword index built from the store in {build * 1000:.0f} ms "
            f"(first search of a process, or after another process wrote)"
            f"\n   {'':14s}(+{added:,} chunks added at {added / fill_seconds:.0f}/s, "
            f"{timed.document_seconds / fill_seconds:.0%} of it embedding)"
        )


def bench_routing(data_dir: Path, turns: int = 60) -> None:
    """What routing by meaning costs: per turn through the graph, and the router alone."""
    import yaml

    from tools.models.embeddings import get_embeddings
    from tools.routing import ConceptRouter

    corpus = Path(__file__).resolve().parents[1] / "evals" / "corpora" / "routing.yaml"
    messages = [c["turns"][-1] for c in yaml.safe_load(corpus.read_text())["cases"]]
    start = time.perf_counter()
    model = get_embeddings()
    loaded = time.perf_counter() - start
    model.embed_query("warm up")
    router = ConceptRouter.from_file(embeddings=model)
    start = time.perf_counter()
    router.route("warm up")  # embeds the examples (once per process)
    examples = time.perf_counter() - start
    aliases_only = ConceptRouter.from_file()
    routed, decided, by_alias = [], [], []
    for i, message in enumerate(messages * 2):
        vector = model.embed_query(message)
        for which in ("route", "decide", "alias") if i % 2 == 0 else ("alias", "decide", "route"):
            begin = time.perf_counter()
            if which == "route":
                router.route(message)
                routed.append(time.perf_counter() - begin)
            elif which == "decide":
                router.route(message, vector=vector)
                decided.append(time.perf_counter() - begin)
            else:
                aliases_only.route(message)
                by_alias.append(time.perf_counter() - begin)
    (r50, r95), (d50, d95), (a50, a95) = (percentiles(x) for x in (routed, decided, by_alias))
    print(
        f"9. routing, median / p95 (ms) over {len(routed)} messages of the routing corpus"
        f"\n   router {r50:5.1f} / {r95:5.1f} = embedding the message + deciding "
        f"{d50:5.2f} / {d95:5.2f}   (aliases alone {a50:5.2f} / {a95:5.2f}); examples "
        f"embedded once per process in {examples:.1f} s (model loaded in {loaded:.1f} s)"
    )
    graphs = {}
    for semantic in (True, False):
        settings = load_settings(
            data_dir=str(data_dir),
            model={"backend": "fake"},
            safety=NO_JUDGE,
            prompts={"semantic": semantic},
        )
        graphs[semantic] = build_graph(
            settings, checkpointer=InMemorySaver(), model=FakeChatModel(reply="ok")
        )
        graphs[semantic].invoke(
            {"messages": [("user", "warm up")]}, {"configurable": {"thread_id": "warm"}}
        )
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(turns):
        message = messages[i % len(messages)] + f" ({i})"  # never a cached vector
        for semantic in (True, False) if i % 2 == 0 else (False, True):
            begin = time.perf_counter()
            graphs[semantic].invoke(
                {"messages": [("user", message)]}, {"configurable": {"thread_id": f"r{i}"}}
            )
            times[semantic].append(time.perf_counter() - begin)
    on, off = (statistics.median(times[s]) * 1000 for s in (True, False))
    print(
        f"   per turn (graph, instant fake model, no documents): {on:.1f} ms with routing "
        f"by meaning vs {off:.1f} ms by aliases alone: +{on - off:.1f} ms (goal <= 25; "
        f"median of {turns}; with documents the same vector serves retrieval)"
    )


# Everyday messages, the kind most turns are: the input check's cost on them is its cost
# per turn. (Written for the benchmark; none is a case of the safety corpora.)
EVERYDAY = [
    "What's a good way to start learning Spanish?",
    "Give me a quick recipe for pancakes.",
    "How do I reverse a list in Python?",
    "What is the capital of Canada?",
    "Suggest a name for a black and white cat.",
    "How many minutes should I boil an egg for a soft yolk?",
    "Explain what an API is in one sentence.",
    "What should I pack for a beach holiday?",
    "How do I undo the last git commit?",
    "Write a haiku about the sea.",
    "Why is the sky blue?",
    "What's the difference between weather and climate?",
    "Can you recommend a book about habits?",
    "How do I center text in CSS?",
    "What are some tips for a job interview?",
    "Convert 30 degrees Celsius to Fahrenheit.",
    "How often should I water a cactus?",
    "What is a prime number?",
    "Help me write a birthday message for my sister.",
    "What time zone is Tokyo in?",
    "How do I make my bike chain stop squeaking?",
    "What does HTTP stand for?",
    "Give me three ideas for a rainy Sunday.",
    "How long does it take to walk 5 km?",
]


REWORDINGS = ("", " Thanks!", " Please be brief.", " Just curious.", " Any tips?")


def bench_safety(path: Path, data_dir: Path, reps: int) -> None:
    """The input check's cost per turn: TTFT with all layers vs. the lexical layer alone."""
    from tools.guardrails import SafetyFilter
    from tools.guardrails.guard import build_guard

    def settings(**safety: Any) -> Settings:
        return load_settings(
            data_dir=str(data_dir),
            model={"backend": "llamacpp", "gguf_path": str(path)},
            generation={"do_sample": False, "max_new_tokens": 8},
            memory={"backend": "none"},
            safety=safety,
        )

    layered_settings = settings()
    layered = build_graph(layered_settings, checkpointer=InMemorySaver())
    lexical = build_graph(settings(semantic=False, judge="off"), checkpointer=InMemorySaver())
    model = get_chat_model(layered_settings)
    assert isinstance(model, LlamaCppChatModel)
    # Warm-up: model weights, embeddings, the exemplar regression, the judge's prefix.
    first_token(layered, {"configurable": {"thread_id": "w1"}}, "Hello there!")
    first_token(lexical, {"configurable": {"thread_id": "w2"}}, "Hello there!")
    # A guard like the graph's (same exemplars, same judge prompt) to time the layers alone.
    deps_guard = build_guard(layered_settings, SafetyFilter(), lambda: model)
    assert deps_guard.judge is not None
    deps_guard.judge.check("warm up the judge's prefix")
    with_layers: list[float] = []
    lexical_only: list[float] = []
    judged = refused = 0
    checks: list[float] = []
    semantic = deps_guard.semantic
    assert semantic is not None
    for rep in range(reps):
        for i, everyday in enumerate(EVERYDAY):
            # Each repetition words the message a little differently: the graph keeps its
            # recent verdicts by text, and a repeated text would be timed as free.
            cycle, wording = divmod(rep, len(REWORDINGS))
            text = everyday + REWORDINGS[wording] + (f" ({cycle})" if cycle else "")
            order = ("layered", "lexical") if (i + rep) % 2 == 0 else ("lexical", "layered")
            for which in order:  # interleaved, so drift and cache effects hit both alike
                config: RunnableConfig = {"configurable": {"thread_id": f"{which}-{rep}-{i}"}}
                graph = layered if which == "layered" else lexical
                seconds = first_token(graph, config, text)
                safety = graph.get_state(config).values.get("safety") or {}
                if not safety.get("allowed", True):
                    refused += which == "layered"
                    continue  # no first token to time: everyday messages should not be here
                (with_layers if which == "layered" else lexical_only).append(seconds)
                judged += which == "layered" and safety.get("layer") == "judge"
            semantic._vectors.clear()  # time the embedding too, not the per-text cache
            begin = time.perf_counter()
            semantic.score(text)
            checks.append(time.perf_counter() - begin)
    judge_times = []
    deps_guard.judge.check("warm up the judge's prefix again")
    for text in EVERYDAY[:8]:
        begin = time.perf_counter()
        deps_guard.judge.check(text)
        judge_times.append(time.perf_counter() - begin)
    a, b = statistics.median(with_layers), statistics.median(lexical_only)
    mean_added = statistics.fmean(with_layers) - statistics.fmean(lexical_only)
    print(
        f"10. input check, {len(EVERYDAY)} everyday messages x {reps}: time to first token "
        f"{a:.2f} s with all layers vs {b:.2f} s lexical only: +{a - b:.2f} s median "
        f"(goal <= 0.5), +{mean_added:.2f} s mean; judge ran on {judged}/{len(with_layers)} "
        f"turns, {refused} refused; semantic layer {statistics.median(checks) * 1000:.0f} ms "
        f"median; one judge call {statistics.median(judge_times):.2f} s median (prefix cached)"
    )


def bench_api(data_dir: Path, turns: int) -> None:
    """Per-request overhead of the HTTP API over the graph alone (fake model, no store)."""
    import httpx
    import uvicorn

    from apps.api.app import create_app
    from apps.api.service import ApiService
    from apps.turns import stream_turn
    from graph.context import Context
    from tools.memory import OpenMemory
    from tools.memory.locks import LocalThreadLocks

    settings = load_settings(data_dir=str(data_dir), model={"backend": "fake"}, safety=NO_JUDGE)
    memory = OpenMemory(InMemorySaver(), None, LocalThreadLocks())
    service = ApiService(settings, memory, model=FakeChatModel(reply="A short reply."))
    sock_port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service=service), host="127.0.0.1", port=sock_port, log_level="warning"
        )
    )
    runner = threading.Thread(target=server.run, daemon=True)
    runner.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{sock_port}/v1/chat/completions"
    context = Context(user_id="bench", remember=False)

    def graph_turn(thread: str, text: str) -> None:
        for _ in stream_turn(
            service.graph,
            memory.locks,
            thread,
            text,
            context,
            owner="bench",
            machine_user="bench",
            wait=0,
        ):
            pass

    def api_turn(http: httpx.Client, thread: str, text: str, stream: bool) -> None:
        body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": text}]}
        with http.stream("POST", url, json=body, headers={"X-Thread-Id": thread}) as response:
            response.read()
            assert response.status_code == 200, response.text

    timings: dict[str, list[float]] = {"graph": [], "api": [], "api-stream": []}
    with httpx.Client(timeout=60) as http:
        for which in ("graph", "api", "api-stream"):  # warm up (the embedding model loads)
            graph_turn("warm", "warm up") if which == "graph" else api_turn(
                http, f"warm-{which}", "warm up", which == "api-stream"
            )
        for i in range(turns):  # interleaved, rotating order, so drift affects all alike
            order = ["graph", "api", "api-stream"]
            order = order[i % 3 :] + order[: i % 3]
            for which in order:
                text = f"question number {i}?"
                start = time.perf_counter()
                if which == "graph":
                    graph_turn(f"g-{i}", text)
                else:
                    api_turn(http, f"{which}-{i}", text, which == "api-stream")
                timings[which].append(time.perf_counter() - start)
    server.should_exit = True
    runner.join(10)
    graph_ms = statistics.median(timings["graph"]) * 1000
    api_ms = statistics.median(timings["api"]) * 1000
    stream_ms = statistics.median(timings["api-stream"]) * 1000
    print(
        f"12. API overhead per request {api_ms - graph_ms:6.2f} ms (streamed "
        f"{stream_ms - graph_ms:.2f} ms)   (API {api_ms:.2f} ms, streamed {stream_ms:.2f} ms "
        f"- graph alone {graph_ms:.2f} ms; goal <= 15 ms; median of {turns})"
    )


def stream_bench_texts(seed: int = 13) -> dict[str, str]:
    """The replies bench 13 streams: CJK only, and Latin words with emoji and Arabic."""
    rnd = random.Random(seed)
    cjk = "你好世界今天天气很好我们去公园散步吧こんにちはカタカナ，。"
    words = (
        "the", "model", "answer", "is", "here", "Python", "process", "classic", "assess",
        "hello", "world", "😀", "👍🏽", "🎉", "👨\u200d👩\u200d👧", "مرحبا", "بالعالم",
        "شكرا", "café", "naïve",
    )  # fmt: skip
    gaps = (" ", " ", " ", ", ", ". ", "\n", "")
    mixed = ""
    while len(mixed) < 1200:
        mixed += rnd.choice(words) + rnd.choice(gaps)
    return {
        "CJK, 1,200 chars": "".join(rnd.choice(cjk) for _ in range(1200)),
        f"Latin/emoji/Arabic, {len(mixed):,} chars": mixed,
    }


def bench_stream(reps: int = 5) -> None:
    """The streaming masker, one character per chunk, against masking the reply once."""
    from tools.guardrails import SafetyFilter
    from tools.guardrails.streaming import StreamMasker

    safety = SafetyFilter()
    safety.mask_output("warm up", "moderate")

    def streamed(text: str) -> str:
        masker = StreamMasker(safety, "moderate")
        return "".join([masker.feed(char) for char in text]) + masker.finish()

    print("13. streaming masker, one character per chunk (moderate), vs. masking it once:")
    for name, text in stream_bench_texts().items():
        stored = safety.mask_output(text, "moderate").text
        if streamed(text) != stored:  # the bench times the masker only when it is right
            raise SystemExit(f"13. {name}: the stream differs from the stored reply")
        stream_s: list[float] = []
        once_s: list[float] = []
        for _ in range(reps):  # interleaved, so load on the machine affects both alike
            start = time.perf_counter()
            streamed(text)
            stream_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            safety.mask_output(text, "moderate")
            once_s.append(time.perf_counter() - start)
        s, o = statistics.median(stream_s), statistics.median(once_s)
        print(
            f"    {name:32} streamed {s * 1000:7.1f} ms   once {o * 1000:6.2f} ms   "
            f"ratio {s / o:6.1f}  ({s / len(text) * 1e6:.0f} us a character; median of {reps})"
        )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["default", "smollm2"], default="default")
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument(
        "--only",
        choices=["memory", "rag", "routing", "chat", "safety", "decode", "cold", "api", "stream"],
        help="run only that part (memory, rag, routing, api, stream: no chat model; chat: "
        "the 30-turn chat; safety: the input check; decode: the graph/raw decode ratio; "
        "cold: the CLI's start; stream: the streaming masker)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        if args.only == "memory":
            bench_memory(data_dir, 50)
            bench_recall(data_dir)
            return
        if args.only == "stream":
            print(f"{os.cpu_count()} cores")
            bench_stream(args.reps + 1)
            return
        if args.only == "api":
            print(f"{os.cpu_count()} cores")
            bench_api(data_dir, 60)
            return
        if args.only == "rag":
            print(f"{os.cpu_count()} cores")
            bench_rag(data_dir)
            return
        if args.only == "routing":
            print(f"{os.cpu_count()} cores")
            bench_routing(data_dir)
            return
        if args.only == "safety":
            path = gguf(args.model, data_dir)
            print(f"model {path.name}, {os.cpu_count()} cores")
            bench_safety(path, data_dir, max(1, args.reps // 2))
            return
        path = gguf(args.model, data_dir)
        print(f"model {path.name}, {os.cpu_count()} cores")
        if args.only == "chat":
            bench_long_chat(settings_for(path, data_dir, 24), args.turns)
            return
        if args.only == "decode":
            bench_throughput(settings_for(path, data_dir, args.tokens), args.reps)
            return
        if args.only == "cold":
            cold_start(path, data_dir)
            return
        cold_start(path, data_dir)  # first: a cold start needs a machine at rest
        bench_throughput(settings_for(path, data_dir, args.tokens), args.reps)
        bench_overhead(data_dir, 50)
        bench_long_chat(settings_for(path, data_dir, 24), args.turns)
        bench_memory(data_dir, 50)
        bench_recall(data_dir)
        bench_rag(data_dir)
        bench_routing(data_dir)
        bench_safety(path, data_dir, max(1, args.reps // 2))
        bench_api(data_dir, 60)
        bench_stream(args.reps + 1)


if __name__ == "__main__":
    main()
