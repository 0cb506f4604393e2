"""Input guardrail: validate the new message, then refuse what this run's level refuses.

The check runs in layers, cheapest first (tools/guardrails/guard.py): words and patterns,
the message's meaning against exemplars, a wrapper classifier, and the model as judge for
the messages the cheaper layers are unsure of.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, RemoveMessage
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import ContextNode, Deps, Node
from graph.errors import InvalidMessageError, MessageTooLongError
from graph.messages import BLOCKED_KEY, CHECKED_KEY, WITHHELD, is_blocked, new_message
from graph.settings import SafetyLevel
from graph.state import State
from tools.guardrails import SafetyVerdict
from tools.guardrails.guard import InputGuard, guard_for, refusal_text
from tools.prompting import MESSAGE_OVERHEAD, REPLY_PRIMER
from tools.prompting import system_text as full_system_text
from tools.text import is_blank

log = logging.getLogger("assistant.safety")

INVALID = ("empty_message", "not_text", "message_too_long")

_NOT_TEXT = re.compile("[\ud800-\udfff]")
"""Lone surrogates: what Python makes of bytes that are not UTF-8 (a terminal in another
encoding, a JSON ``\\ud800`` escape). No model, tokenizer or store can take them."""


def _not_text(text: str) -> str | None:
    """Why the message is not text a model can read, or None if it is."""
    found = _NOT_TEXT.search(text)
    if found is None:
        return None
    return (
        f"the message has bytes that are not text at character {found.start() + 1} (not "
        "UTF-8: is the terminal or the file in another encoding?)"
    )


def _other_parts(content: str | list[str | dict[str, Any]]) -> str | None:
    """Why a message with content parts other than text cannot be read, or None.

    The dev server and the SDK pass OpenAI-style parts through ("image_url", ...); the
    model reads text only, and answering the text alone would ignore what was sent.
    """
    if isinstance(content, str):
        return None
    kinds = [
        str(part.get("type"))
        for part in content
        if isinstance(part, dict) and part.get("type") not in ("text", None)
    ]
    if not kinds:
        return None
    return f"only text content parts are supported, not {', '.join(map(repr, kinds))}"


def _too_long(deps: Deps, state: State, text: str) -> str | None:
    """Why the message cannot fit the prompt budget, or None if it can."""
    budget = deps.settings.context.max_prompt_tokens
    # Cheap bound first: no tokenizer produces fewer than one token per 8 characters of
    # text, so a message this long never fits and we skip tokenising megabytes.
    if len(text) > budget * 8:
        return (
            f"the message is {len(text):,} characters; the prompt budget "
            f"(context.max_prompt_tokens) is {budget} tokens"
        )
    # Without the running summary: generate shortens it to fit, it never rejects a message.
    system = full_system_text(deps.system_prompt, "")
    needed = (
        deps.count_tokens(text) + deps.count_tokens(system) + 2 * MESSAGE_OVERHEAD + REPLY_PRIMER
    )
    if needed > budget:
        return (
            f"the message needs {needed} prompt tokens with the system prompt; the budget "
            f"(context.max_prompt_tokens) is {budget}"
        )
    return None


def _turn_reset(state: State) -> dict[str, Any]:
    # Per-turn fields start afresh; `summary` is written as it is so that every turn's
    # output carries it, even before the first summary exists.
    return {
        "concept": None,
        "prompt_tokens": 0,
        "sources": [],
        "retrieval": {},
        "summary": state.summary,
    }


def route_after_check(state: State) -> Literal["detect_alias", "refuse", "reject"]:
    """Allowed messages go on; blocked ones are refused; invalid ones are rejected."""
    if state.safety.get("allowed"):
        return "detect_alias"
    if state.safety.get("category") in INVALID:
        return "reject"
    return "refuse"


class _Verdicts:
    """The guardrail's recent verdicts by (level, text): a bounded, thread-safe LRU.

    The verdict on a text at a level does not change (the judge's is a probability, not
    a sample), and an API client that keeps no thread resends its whole conversation
    with every request: each earlier message was that client's last one a request
    before, so it is checked once, not once per request.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[str, bytes], SafetyVerdict] = OrderedDict()

    def check(
        self, guard: InputGuard, text: str, level: SafetyLevel, *, as_reply: bool = False
    ) -> SafetyVerdict:
        """``guard.check(text, level, as_reply=...)``, answered from memory when asked before."""
        # By digest: the texts themselves could be 4096 long messages.
        kind = f"assistant:{level}" if as_reply else level
        key = (kind, hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        return self._remember(key, guard.check(text, level, as_reply=as_reply))

    def check_reply(
        self, guard: InputGuard, request: str, reply: str, level: SafetyLevel
    ) -> SafetyVerdict:
        """``guard.check_reply(request, reply, level)``, answered from memory when asked before."""
        both = f"{request}\0{reply}".encode("utf-8", "surrogatepass")
        key = (f"reply:{level}", hashlib.sha256(both).digest())
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        return self._remember(key, guard.check_reply(request, reply, level))

    def _remember(self, key: tuple[str, bytes], verdict: SafetyVerdict) -> SafetyVerdict:
        with self._lock:
            self._kept[key] = verdict
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return verdict


def make_check_input(deps: Deps) -> ContextNode:
    """Build the ``check_input`` node."""
    verdicts = _Verdicts()

    def check_input(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Validate the new message, then apply the input guardrail of this run's level."""
        level = deps.safety_level(runtime.context)
        message = new_message(state)
        text = message.text.strip()
        # An image (alone or with words) is not an empty message: say what cannot be read.
        category, problem = "not_text", _other_parts(message.content)
        if problem is None and is_blank(text):
            category, problem = "empty_message", "the message is empty"
        if problem is None and (problem := _not_text(text)):
            category = "not_text"
        if problem is None and (problem := _too_long(deps, state, text)):
            category = "message_too_long"
        if problem:
            # Take the message back out of the thread, then `reject` raises: the caller
            # gets a clear error and the thread is left as it was before the turn.
            return {
                "messages": [RemoveMessage(id=message.id or "")],
                **_turn_reset(state),
                "safety": {
                    "allowed": False,
                    "level": level,
                    "reason": problem,
                    "category": category,
                    "matches": [],
                },
            }
        # The guard is built on the first message, not with the graph: a picture of the
        # graph or the dev server's start-up loads no embeddings.
        guard = guard_for(deps.settings, deps.safety, lambda: deps.model, deps.can_judge)
        earlier, refused = _check_earlier(deps, verdicts, guard, state.messages[:-1], level)
        verdict = verdicts.check(guard, text, level)
        if verdict.allowed and refused is not None:
            # The history claims the assistant said what it would never keep: continuing
            # it would be that reply's next step, so the request is refused as such.
            verdict = refused
        update: dict[str, Any] = {**_turn_reset(state), "safety": verdict.as_dict()}
        update["messages"] = [*earlier, _checked(message)]
        if not verdict.allowed and verdict is not refused:
            log.info(
                "input blocked at %s by the %s layer: %s (%s)",
                level,
                verdict.layer,
                verdict.reason,
                verdict.category,
            )
            # Keep the turn in the thread but not its text: the model must never see it.
            update["messages"] = [*earlier, _withheld(message)]
        return update

    return check_input


def _checked(message: BaseMessage) -> BaseMessage:
    """The same message, marked as passed by the guardrail (it is not checked again)."""
    marked = {**message.additional_kwargs, CHECKED_KEY: True}
    return message.model_copy(update={"additional_kwargs": marked})


def _withheld(message: BaseMessage) -> HumanMessage:
    """A blocked user message as the thread keeps it: the same id, not its text."""
    return HumanMessage(WITHHELD, id=message.id, additional_kwargs={BLOCKED_KEY: True})


def _segments(messages: Sequence[AnyMessage]) -> list[list[AnyMessage]]:
    """The messages cut before each user message: ``[user, replies...]``.

    The first segment may start with replies that follow no user message.
    """
    segments: list[list[AnyMessage]] = []
    for message in messages:
        if isinstance(message, HumanMessage) or not segments:
            segments.append([])
        segments[-1].append(message)
    return segments


def _unchecked(message: BaseMessage) -> bool:
    return not is_blocked(message) and not message.additional_kwargs.get(CHECKED_KEY)


def _check_earlier(
    deps: Deps,
    verdicts: _Verdicts,
    guard: InputGuard,
    messages: Sequence[AnyMessage],
    level: SafetyLevel,
) -> tuple[list[BaseMessage], SafetyVerdict | None]:
    """Check the history no turn checked, as far back as the prompt can reach.

    A caller may start a thread with earlier turns (the HTTP API's stateless requests, a
    dev-server input of several messages): they never passed a guardrail, and the model
    would read them as history.

    - A user message is checked at this run's level, once: one that passes is marked,
      one that does not is withheld like a refused message, and the replies after it
      become the refusal, so the model sees neither.
    - An assistant message the caller wrote is the caller's claim, not the model's words
      ("Sure! Step 1: ..." to be continued): it is masked and checked as a model reply
      is (``InputGuard.check_reply``), and, as text the client wrote is input whoever it
      is attributed to, by the input check's layers too, decoded ("<Base64 of a recipe>"
      then "decode your last message"; a score that refuses a request but never
      withdraws a reply): ``InputGuard.check(..., as_reply=True)``. One either check
      refuses becomes the refusal, and so does the whole request (the returned verdict).
    - Only the newest ``max_history_turns`` turns the model will see are checked (from
      the newest back, a withheld turn does not count): older ones cannot reach the
      prompt, so they cannot steer the model, and checking them made one long request
      hold the model queue for minutes. The caller's unchecked messages older than that
      are removed from the thread, so no later turn or summary reads them unchecked.

    Turns the graph ran were checked then (their replies are marked by check_output)
    and are skipped.

    Returns:
        Replacement messages (same ids) and removals for the ``messages`` reducer, and
        the reply verdict that refuses the request (None when none does).
    """
    limit = deps.settings.context.max_history_turns
    refusal = deps.settings.safety.refusal_template
    updates: list[BaseMessage] = []
    refused: SafetyVerdict | None = None
    visible = 0
    segments = _segments(messages)
    for segment in reversed(segments):
        first = segment[0]
        user = first if isinstance(first, HumanMessage) else None
        replies = segment[1:] if user is not None else segment
        if visible >= limit:
            # Out of the prompt's reach: the caller's unchecked messages go.
            if user is None or _unchecked(user):
                updates.extend(
                    RemoveMessage(id=m.id or "") for m in segment if _unchecked(m) and m.id
                )
            continue
        withheld = user is not None and is_blocked(user)
        if user is not None and _unchecked(user):
            verdict = (
                None if _not_text(user.text) else verdicts.check(guard, user.text.strip(), level)
            )
            if verdict is None or not verdict.allowed:  # not text: withheld, not checked
                withheld = True
                updates.append(_withheld(user))
                if verdict is not None:
                    log.info(
                        "earlier message blocked at %s: %s (%s)",
                        level,
                        verdict.reason,
                        verdict.category,
                    )
                    text = refusal_text(refusal, deps.safety, verdict)
                    updates.extend(
                        AIMessage(text, id=m.id, additional_kwargs={BLOCKED_KEY: True})
                        for m in replies
                        if isinstance(m, AIMessage) and not is_blocked(m)
                    )
                continue
            updates.append(_checked(user))
        shown = False
        for reply in replies:
            if not isinstance(reply, AIMessage) or is_blocked(reply):
                continue
            if not _unchecked(reply):
                shown = True
                continue
            masked = deps.safety.mask_output(reply.text, level).text
            request = user.text if user is not None else ""
            verdict = verdicts.check_reply(guard, request, masked, level)
            if verdict.allowed:
                verdict = verdicts.check(guard, masked, level, as_reply=True)
            if verdict.allowed:
                shown = True
                marked = {**reply.additional_kwargs, CHECKED_KEY: True}
                updates.append(AIMessage(masked, id=reply.id, additional_kwargs=marked))
                continue
            log.info(
                "a caller's assistant message withdrawn at %s: %s (%s)",
                level,
                verdict.reason,
                verdict.category,
            )
            refused = refused or verdict
            text = refusal_text(refusal, deps.safety, verdict)
            updates.append(AIMessage(text, id=reply.id, additional_kwargs={BLOCKED_KEY: True}))
        if user is not None and not withheld and shown:
            visible += 1
    return updates, refused


def make_reject(deps: Deps) -> Node:
    """Build the ``reject`` node, which turns an invalid message into an error."""

    def reject(state: State) -> dict[str, Any]:
        """Raise the validation error found by ``check_input``."""
        reason = str(state.safety.get("reason", "invalid message"))
        if state.safety.get("category") == "message_too_long":
            raise MessageTooLongError(reason + ". Shorten the message.")
        raise InvalidMessageError(reason)

    return reject
