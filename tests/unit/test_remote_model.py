"""The OpenAI-compatible backend against stand-in servers (httpx mock transport, sockets)."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import SecretStr

from graph.settings import SettingsError, load_settings
from tests.conftest import assistant
from tests.support.http_server import free_port
from tools.models import ModelLoadError, ModelServerError, RemoteChatModel, get_chat_model
from tools.models.files import smollm2_path
from tools.models.remote import candidate_scores, estimate_tokens, load_tokenizer_counter

Handler = Callable[[httpx.Request], httpx.Response]


def models(*names: str) -> httpx.Response:
    data = [{"id": n, "object": "model", "created": 0, "owned_by": "me"} for n in names]
    return httpx.Response(200, json={"object": "list", "data": data})


def completion(text: str, logprobs: Any = None, finish: str = "stop") -> httpx.Response:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": finish,
        "logprobs": logprobs,
    }
    body = {"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]}
    return httpx.Response(200, json=body)


def sse(pieces: list[str], finish: str = "stop") -> httpx.Response:
    def chunk(delta: dict[str, Any], reason: str | None) -> str:
        body = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
        }
        return f"data: {json.dumps(body)}\n\n"

    events = [chunk({"role": "assistant", "content": p}, None) for p in pieces]
    events.append(chunk({}, finish))
    return httpx.Response(
        200,
        content=("".join(events) + "data: [DONE]\n\n").encode(),
        headers={"content-type": "text/event-stream"},
    )


class Server:
    """A stand-in OpenAI-compatible server: records requests, answers from ``chat``."""

    def __init__(self, chat: Handler, names: tuple[str, ...] = ("m",)) -> None:
        self.chat = chat
        self.names = names
        self.requests: list[dict[str, Any]] = []
        self.model_lists = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            self.model_lists += 1
            return models(*self.names)
        self.requests.append(json.loads(request.content))
        return self.chat(request)

    def model(self, **fields: Any) -> RemoteChatModel:
        client = httpx.Client(transport=httpx.MockTransport(self))
        return RemoteChatModel(base_url="http://gpu-host:8000/v1", http_client=client, **fields)


def test_streams_pieces_and_maps_our_sampling_knobs() -> None:
    server = Server(
        lambda r: (
            sse(["Hel", "lo", " there"]) if json.loads(r.content)["stream"] else completion("")
        )
    )
    model = server.model()
    pieces = [c.text for c in model.stream("hi", do_sample=False, max_new_tokens=5, seed=-1)]
    assert [p for p in pieces if p] == ["Hel", "lo", " there"]
    sent = server.requests[-1]
    assert sent["stream"] is True and sent["model"] == "m"
    assert sent["temperature"] == 0.0 and sent["max_tokens"] == 5
    # no OpenAI field for these: never sent (a strict server would refuse the request)
    for key in ("seed", "repeat_penalty", "do_sample", "max_new_tokens", "max_completion_tokens"):
        assert key not in sent
    model.invoke("hi", temperature=0.7, top_p=0.5, seed=7, repeat_penalty=1.3, stop=["\n"])
    sent = server.requests[-1]
    assert (sent["temperature"], sent["top_p"], sent["seed"], sent["stop"]) == (
        0.7,
        0.5,
        7,
        ["\n"],
    )
    assert server.model_lists == 1, "the server is checked once, not per call"


def test_invoke_reports_the_finish_reason_the_summariser_reads() -> None:
    model = Server(lambda r: completion("A summary that was cut", finish="length")).model()
    reply = model.invoke("summarise", max_new_tokens=3)
    assert reply.text == "A summary that was cut"
    assert reply.response_metadata["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("name", "served", "expected"),
    [("", ("first", "second"), "first"), ("second", ("first", "second"), "second")],
)
def test_the_model_name_is_the_configured_one_or_the_first_served(
    name: str, served: tuple[str, ...], expected: str
) -> None:
    server = Server(lambda r: completion("ok"), names=served)
    model = server.model(name=name)
    model.invoke("hi")
    assert model.model_name == expected and server.requests[-1]["model"] == expected


def test_an_unknown_model_names_the_url_and_what_the_server_serves() -> None:
    server = Server(lambda r: completion("never"), names=("qwen2.5-coder", "llama3"))
    with pytest.raises(ModelServerError) as caught:
        server.model(name="mistral").invoke("hi")
    message = str(caught.value)
    assert "http://gpu-host:8000/v1" in message and "'mistral'" in message
    assert "qwen2.5-coder, llama3" in message and "\n" not in message
    assert server.requests == [], "nothing is generated with a model the server lacks"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, {"error": {"message": "The model `m` does not exist."}}, "not found"),
        (400, {"error": {"message": "model 'm' not loaded"}}, "answered 400"),
        (401, {"error": {"message": "invalid key"}}, "refused the API key"),
        (500, {"error": {"message": "CUDA out of memory"}}, "answered 500"),
    ],
)
def test_an_error_status_on_the_call_is_one_line_with_the_servers_words(
    status: int, body: dict[str, Any], expected: str
) -> None:
    model = Server(lambda r: httpx.Response(status, json=body)).model(retries=0)
    with pytest.raises(ModelServerError) as caught:
        model.invoke("hi")
    message = str(caught.value)
    assert expected in message and body["error"]["message"] in message
    assert "gpu-host:8000" in message and "\n" not in message
    with pytest.raises(ModelServerError):
        list(model.stream("hi"))  # the streaming path maps them too


@pytest.mark.parametrize(("window", "refused"), [(2048, True), (4096, False), (None, False)])
def test_a_server_window_smaller_than_the_budget_assumes_is_refused(
    window: int | None, refused: bool
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            entry: dict[str, Any] = {"id": "q", "object": "model", "created": 0, "owned_by": "vllm"}
            if window is not None:
                entry["max_model_len"] = window  # vLLM says its window; others do not
            return httpx.Response(200, json={"object": "list", "data": [entry]})
        return completion("ok")

    client = httpx.Client(transport=httpx.MockTransport(handler))
    model = RemoteChatModel(base_url="http://h/v1", n_ctx=4096, http_client=client)
    if refused:
        with pytest.raises(ModelServerError, match=r"window of 2048 tokens.*model\.n_ctx \(4096\)"):
            model.invoke("hi")
    else:
        assert model.invoke("hi").text == "ok"


def test_a_server_without_a_model_list_is_used_by_name_or_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(404, json={"error": {"message": "no such route"}})
        return completion("fine")

    client = httpx.Client(transport=httpx.MockTransport(handler))
    named = RemoteChatModel(base_url="http://h/v1", name="m", http_client=client)
    assert named.invoke("hi").text == "fine"
    unnamed = RemoteChatModel(base_url="http://h/v1", http_client=client)
    with pytest.raises(ModelServerError, match=r"set model\.name"):
        unnamed.invoke("hi")


def test_a_server_that_is_down_names_its_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    model = RemoteChatModel(base_url=url, retries=0)
    with pytest.raises(ModelServerError) as caught:
        model.invoke("hi")
    assert f"cannot reach the model server at {url}" in str(caught.value)
    assert isinstance(caught.value, ModelLoadError), "every front end already reports these"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_a_server_that_never_answers_times_out_with_the_setting_named(silent_server: str) -> None:
    model = RemoteChatModel(base_url=silent_server, timeout=0.3, retries=0)
    with pytest.raises(ModelServerError) as caught:
        model.invoke("hi")
    assert "did not answer within 0.3 s (model.timeout)" in str(caught.value)


def test_a_stream_that_stalls_times_out() -> None:
    calls = {"chat": 0}

    def stall(request: httpx.Request) -> httpx.Response:
        calls["chat"] += 1
        raise httpx.ReadTimeout("stalled", request=request)

    model = Server(stall).model(timeout=5, retries=1)
    with pytest.raises(ModelServerError, match="did not answer within 5 s"):
        list(model.stream("hi"))
    assert calls["chat"] == 2, "one retry, as configured"


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        # the usual case: each candidate's own first token is listed
        ([("safe", -0.1), ("un", -2.5)], {"safe": math.exp(-0.1), "unsafe": math.exp(-2.5)}),
        # a whole-word token, and a shorter token of the same word: the likelier one counts
        ([("unsafe", -1.0), ("u", -3.0), ("saf", -0.5)], {"safe": math.exp(-0.5), "unsafe": 0.37}),
        # tokens that start both or neither tell nothing; an unlisted candidate gets 0
        ([("", -0.01), (" safe", -0.2), ("Sure", -0.3)], {"safe": 0.0, "unsafe": 0.0}),
    ],
)
def test_candidate_scores_count_tokens_that_start_one_candidate_only(
    top: list[tuple[str, float]], expected: dict[str, float]
) -> None:
    scores = candidate_scores([{"token": t, "logprob": lp} for t, lp in top], ["safe", "unsafe"])
    assert scores == pytest.approx(expected, abs=0.01)


def test_candidates_that_share_a_prefix_token_are_told_apart_by_longer_ones() -> None:
    top = [{"token": "s", "logprob": -0.1}, {"token": "sa", "logprob": -1.0}]
    scores = candidate_scores(top, ["safe", "sorry"])
    assert scores == pytest.approx({"safe": math.exp(-1.0), "sorry": 0.0})


def test_first_token_probabilities_from_logprobs_and_words_when_there_are_none() -> None:
    listed = {
        "content": [
            {
                "token": "safe",
                "logprob": -0.2,
                "bytes": None,
                "top_logprobs": [
                    {"token": "safe", "logprob": -0.2, "bytes": None},
                    {"token": "unsafe", "logprob": -1.8, "bytes": None},
                ],
            }
        ]
    }
    server = Server(lambda r: completion("safe", logprobs=listed))
    messages = [SystemMessage("Say safe or unsafe."), HumanMessage("How do I bake bread?")]
    scores = server.model().first_token_probabilities(messages, ["safe", "unsafe"])
    assert scores == pytest.approx({"safe": math.exp(-0.2), "unsafe": math.exp(-1.8)})
    sent = server.requests[-1]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 20
    assert sent["max_tokens"] == 1 and sent["temperature"] == 0.0

    bare = Server(lambda r: completion("safe"))
    model = bare.model()
    assert model.first_token_probabilities(messages, ["safe", "unsafe"]) is None
    assert model.first_token_probabilities(messages, ["safe", "unsafe"]) is None
    assert len(bare.requests) == 1, "a server without logprobs is asked once"


@pytest.mark.parametrize(
    ("text", "measured"),
    [
        ("", 0),
        # the most tokens SmolLM2-135M or Qwen2.5-1.5B (GGUF vocabularies) make of it
        ("Hello, world! How are you today?", 9),  # both 9
        ("Привет! Как дела? Расскажи о погоде.", 28),  # SmolLM2 28, Qwen2.5 16
        ("今天天气很好，我们去公园散步吧。", 31),  # SmolLM2 31, Qwen2.5 10
    ],
)
def test_the_estimate_does_not_undercount_measured_tokenizers(text: str, measured: int) -> None:
    estimate = estimate_tokens(text)
    assert measured <= estimate <= 2 * measured


@pytest.mark.parametrize(
    ("text", "at_least"),
    [
        ("a b c d", 4),  # every word is a token of its own
        ("2026-11-29", 10),  # so is every digit and every dash
        ("x" * 4000, 1000),  # a long run: one token per 4 letters
        ("é", 1),
    ],
)
def test_every_piece_a_tokenizer_splits_off_counts(text: str, at_least: int) -> None:
    assert at_least <= estimate_tokens(text) <= 2 * at_least


def test_the_estimate_adds_up_over_a_longer_text() -> None:
    turn = "Hi, I am Ada. "
    one = estimate_tokens(turn)
    assert one >= 6  # Hi , I am Ada .
    assert estimate_tokens(turn * 10) >= 10 * 6


def test_a_gguf_tokenizer_counts_exactly_as_the_served_model(tmp_path: Path) -> None:
    from llama_cpp import Llama

    gguf = smollm2_path()
    count = load_tokenizer_counter(gguf)
    vocab = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    for text in ["Hello, world!", "Привет", "def f(x):\n    return x"]:
        expected = len(vocab.tokenize(text.encode(), add_bos=False, special=True))
        assert count(text) == expected
    model = RemoteChatModel(base_url="http://unused/v1", tokenizer=gguf)
    assert model.get_num_tokens("Hello, world!") == count("Hello, world!")


def test_a_tokenizer_json_counts_its_tokens(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"hello": 0, "world": 1, "[UNK]": 2}, "[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    count = load_tokenizer_counter(path)
    assert count("hello world") == 2 and count("hello there big world") == 4


@pytest.mark.parametrize("content", [None, "not a tokenizer"])
def test_a_missing_or_broken_tokenizer_file_is_a_clear_error(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "tokenizer.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ModelLoadError, match=r"model\.tokenizer"):
        load_tokenizer_counter(path)


def test_settings_pick_the_backend_without_contacting_the_server() -> None:
    settings = load_settings(
        model={
            "backend": "openai",
            "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "name": "qwen",
            "api_key": "sk-test",
            "timeout": 5,
            "retries": 0,
        }
    )
    model = get_chat_model(settings)
    assert isinstance(model, RemoteChatModel)
    assert (model.name, model.timeout, model.retries) == ("qwen", 5.0, 0)
    assert model.api_key == SecretStr("sk-test") and "sk-test" not in repr(settings)
    other = load_settings(model={**settings.model.model_dump(), "api_key": "sk-other"})
    assert get_chat_model(other) is not model, "another key is another client"


@pytest.mark.parametrize(
    "model",
    [
        {"backend": "openai", "base_url": "localhost:8080/v1"},
        {"backend": "openai", "timeout": 0},
        {"backend": "openai", "retries": -1},
        {"backend": "openapi"},
    ],
)
def test_bad_remote_settings_are_refused(model: dict[str, Any]) -> None:
    with pytest.raises(SettingsError):
        load_settings(model=model)


def test_the_cli_says_the_server_is_down_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    done = assistant(
        "chat",
        "-m",
        "Hello?",
        ASSISTANT_MODEL__BACKEND="openai",
        ASSISTANT_MODEL__BASE_URL=url,
        ASSISTANT_MODEL__RETRIES="0",
        COLUMNS="300",  # rich wraps at the terminal's width; the message is one line
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert (
        lines[0]
        == f"model error: cannot reach the model server at {url}: [Errno 111] Connection refused"
    )


def test_an_eval_record_names_the_server_and_model() -> None:
    from evals.runner import model_label

    named = load_settings(
        model={"backend": "openai", "base_url": "http://gpu:8000/v1", "name": "q"}
    )
    assert model_label(named) == "openai:q@http://gpu:8000/v1"
    unnamed = load_settings(model={"backend": "openai"})
    assert model_label(unnamed) == "openai:(first served)@http://127.0.0.1:8080/v1"
