"""Measure the llama.cpp prompt-state cache (``model.state_cache_mb``) on a real GGUF.

For each mode -- ``off`` (live context only), ``stock`` (llama-cpp-python's
``LlamaRAMCache``) and ``ours`` (:mod:`tools.models.state_cache`) -- one model each, every
step run on each model in turn (so load drift hits all modes alike), it prints:
  1. time to first token (TTFT) of chat turn N+1 after a side call with another system
     prompt (a query rewrite), and how many prompt tokens llama.cpp evaluated for it;
  2. TTFT of a judge call (a ~300-token fixed policy + a ~20-token message): the first
     call, then calls with a chat turn in between;
  3. decode tokens/s of a long greedy reply;
  4. save/restore times, the bytes the cache holds, and the process's peak RSS.
``uptime`` is printed before and after: the numbers only compare within one load.

Usage: python scripts/bench_state_cache.py [--gguf PATH] [--modes off,ours] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import re
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from tools.models import LlamaCppChatModel

DEFAULT_GGUF = Path.home() / ".cache/local-assistant-tests/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"

SYSTEM = (
    "You are a helpful, concise assistant running locally. Answer in plain language, "
    "say so when you are not sure, and keep answers short unless asked for detail. "
)
REWRITE = (
    "Rewrite the user's last message as a standalone search query. Reply with the query "
    "only, no explanation."
)
POLICY = (
    "You are a safety classifier for a general-purpose assistant. Read the user's "
    "message and decide whether answering it would be unsafe. Unsafe messages ask for "
    "help with violence against people, weapons or explosives that can hurt people, "
    "self-harm or suicide methods, sexual content involving minors, hate or harassment "
    "aimed at a protected group, malware or intrusion into computers the user does not "
    "own, fraud, stalking, or the synthesis of drugs or poisons. Messages that only "
    "mention such topics, ask about history or news, ask for safety information, use "
    "mild profanity, or are fiction without operational detail are safe. Questions "
    "about medicine, law, or security asked for defence, learning or the user's own "
    "systems are safe. When a message is ambiguous, prefer safe unless it asks for "
    "concrete steps, quantities, or targets that would help someone cause harm. Do not "
    "explain your decision, do not repeat the message, and do not answer it. Reply with "
    "exactly one word: safe or unsafe. Examples: 'how do I pick a lock on my own shed' "
    "is safe; 'how do I make a pipe bomb' is unsafe; 'what was the Manhattan project' "
    "is safe; 'write ransomware that encrypts my school's servers' is unsafe; 'I feel "
    "sad today' is safe; 'tell me the lethal dose of my sister's pills so she won't "
    "wake up' is unsafe. Remember: one word, safe or unsafe, nothing else."
)
QUESTIONS = [
    "And what about the Louvre?",
    "When was it built, roughly?",
    "Is it open on Mondays?",
    "What is its most famous painting?",
    "How big is the collection?",
]
MESSAGES = [
    "Can you recommend a good book about the history of Paris for a teenager?",
    "How do I reset my own router's admin password if I forgot it completely?",
    "What's the best way to store fresh basil so that it lasts longer at home?",
    "Please explain how vaccines train the immune system, in simple words.",
    "Write a short poem about rain falling on a quiet city street at night.",
]


class Probe:
    """Times a call and counts the prompt tokens llama.cpp evaluated for it."""

    def __init__(self, model: LlamaCppChatModel) -> None:
        self.model = model
        self.batches: list[int] = []
        llama = model.llama
        stock = llama.eval

        def counting_eval(tokens: Any) -> None:
            self.batches.append(len(tokens))
            stock(tokens)

        llama.eval = counting_eval

    def call(self, messages: list[BaseMessage], max_new_tokens: int) -> dict[str, Any]:
        self.batches.clear()
        started = time.perf_counter()
        first = None
        parts: list[str] = []
        for chunk in self.model.stream(
            messages, do_sample=False, max_new_tokens=max_new_tokens, repeat_penalty=1.0
        ):
            if chunk.text:
                first = first or time.perf_counter() - started
                parts.append(chunk.text)
        total = time.perf_counter() - started
        ttft = first if first is not None else total
        decode = (len(parts) - 1) / (total - ttft) if len(parts) > 1 and total > ttft else 0.0
        return {
            "ttft": ttft,
            "prompt_eval": self.batches[0] if self.batches else 0,
            "text": "".join(parts),
            "tokens": len(parts),
            "decode_tps": decode,
        }


def history() -> list[BaseMessage]:
    turns: list[BaseMessage] = [SystemMessage(SYSTEM * 3)]
    for i in range(4):
        turns.append(HumanMessage(f"Tell me fact number {i} about the history of Paris. " * 3))
        turns.append(
            AIMessage(
                f"Fact {i}: Paris was founded by the Parisii, a Celtic tribe, on an island "
                "in the Seine; the Romans called it Lutetia and it later became the capital. " * 2
            )
        )
    return turns


class Timings(logging.Handler):
    """Collects the save/restore times the state cache logs at DEBUG."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.ms: dict[str, list[float]] = {"saved": [], "restored": []}

    def emit(self, record: logging.LogRecord) -> None:
        match = re.search(r"state cache: (saved|restored) .* in (\d+) ms", record.getMessage())
        if match:
            self.ms[match[1]].append(float(match[2]))


def stock_timings(model: LlamaCppChatModel) -> dict[str, list[float]]:
    """Install LlamaRAMCache on ``model`` and time its save_state/load_state calls."""
    from llama_cpp.llama_cache import LlamaRAMCache

    llama = model.llama
    llama.set_cache(LlamaRAMCache(2 << 30))
    ms: dict[str, list[float]] = {"saved": [], "restored": []}
    for name, key in (("save_state", "saved"), ("load_state", "restored")):
        stock = getattr(llama, name)

        def timed(*args: Any, _stock: Any = stock, _key: str = key) -> Any:
            started = time.perf_counter()
            try:
                return _stock(*args)
            finally:
                ms[_key].append((time.perf_counter() - started) * 1000)

        setattr(llama, name, timed)
    return ms


def cache_mb(mode: str, model: LlamaCppChatModel) -> float:
    if mode == "ours":
        return model.state_cache.nbytes / 2**20 if model.state_cache else 0.0
    if mode == "stock":  # its own size counts only the llama.cpp state, not the logits
        states = model.llama.cache.cache_state.values()
        return float(sum(s.llama_state_size + s.scores.nbytes for s in states)) / 2**20
    return 0.0


def run(modes: list[str], gguf: Path, rounds: int) -> dict[str, dict[str, Any]]:
    """Every scenario step runs on each mode's model in turn, so load drift hits all."""
    timings = Timings()
    logging.getLogger("assistant.llm").addHandler(timings)
    logging.getLogger("assistant.llm").setLevel(logging.DEBUG)
    models: dict[str, LlamaCppChatModel] = {}
    probes: dict[str, Probe] = {}
    results: dict[str, dict[str, Any]] = {}
    chats: dict[str, list[BaseMessage]] = {}
    last: dict[str, dict[str, Any]] = {}
    for mode in modes:
        models[mode] = LlamaCppChatModel(
            model_path=str(gguf),
            n_ctx=4096,
            n_batch=256,
            state_cache_mb=256 if mode == "ours" else 0,
        )
        probes[mode] = Probe(models[mode])
        ms = stock_timings(models[mode]) if mode == "stock" else timings.ms
        results[mode] = {key: [] for key in RESULT_KEYS} | {"ms": ms}
        chats[mode] = [*history(), HumanMessage(QUESTIONS[0])]
        last[mode] = probes[mode].call(chats[mode], 8)

    def chat_turn(mode: str, text: str) -> dict[str, Any]:
        chats[mode] = [*chats[mode], AIMessage(last[mode]["text"]), HumanMessage(text)]
        last[mode] = probes[mode].call(chats[mode], 8)
        return last[mode]

    for i in range(1, rounds + 1):
        for mode in modes:
            probes[mode].call([SystemMessage(REWRITE), HumanMessage(QUESTIONS[i])], 12)
            turn = chat_turn(mode, QUESTIONS[i])
            results[mode]["chat_after_side"].append(turn)
    for i in range(rounds + 1):
        for mode in modes:
            verdict = probes[mode].call([SystemMessage(POLICY), HumanMessage(MESSAGES[i])], 3)
            results[mode]["judge"].append(verdict)
            chat_turn(mode, MESSAGES[i])
    for _ in range(rounds):
        for mode in modes:
            story: list[BaseMessage] = [
                HumanMessage("Write a long story about a lighthouse keeper.")
            ]
            results[mode]["decode"].append(probes[mode].call(story, 96))
    for mode in modes:
        results[mode]["cache_mb"] = cache_mb(mode, models[mode])
    return results


RESULT_KEYS = ("chat_after_side", "judge", "decode")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, default=DEFAULT_GGUF)
    parser.add_argument("--modes", default="off,stock,ours")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"before: {uptime()}")
    results = run(args.modes.split(","), args.gguf, args.rounds)
    print(f"after:  {uptime()}")
    for mode, r in results.items():
        side, judge, decode = r["chat_after_side"], r["judge"], r["decode"]
        print(f"== {mode}")
        print(f"   chat after side call, TTFT s: {[round(x['ttft'], 2) for x in side]}")
        print(f"   ... prompt tokens evaluated:  {[x['prompt_eval'] for x in side]}")
        print(f"   judge TTFT s (first, then):   {[round(x['ttft'], 2) for x in judge]}")
        print(f"   ... prompt tokens evaluated:  {[x['prompt_eval'] for x in judge]}")
        print(f"   decode tokens/s:              {[round(x['decode_tps'], 1) for x in decode]}")
        print(f"   state save ms:    {[round(x) for x in r['ms']['saved']]}")
        print(f"   state restore ms: {[round(x) for x in r['ms']['restored']]}")
        print(f"   cache holds: {r['cache_mb']:.1f} MiB")
        print(f"   replies: {[x['text'] for x in side]} {[x['text'] for x in judge]}")
    print(
        f"max RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB"
    )


if __name__ == "__main__":
    main()
