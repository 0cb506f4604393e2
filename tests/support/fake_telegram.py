"""A stand-in for Telegram's Bot API on 127.0.0.1: answers getMe, records sendMessage.

Point python-telegram-bot at it with ``base_url=f"{url}/bot"`` (the setting
``telegram.api_base_url``). Every call is recorded as ``(method, params)``; a wrong token
gets Telegram's 401 answer.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BOT_USER = {
    "id": 424242,
    "is_bot": True,
    "first_name": "Assistant",
    "username": "local_assistant_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


class FakeTelegram:
    """The Bot API methods a webhook bot calls, with every call kept for the test."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[Route("/bot{token}/{method}", self._method, methods=["GET", "POST"])]
        )

    async def _method(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, 401
            )
        method = request.path_params["method"]
        params = await _params(request)
        with self._lock:
            self.calls.append((method, params))
        if method == "getMe":
            result: Any = BOT_USER
        elif method == "sendMessage":
            result = {
                "message_id": next(self._ids),
                "date": int(time.time()),
                "chat": {"id": int(params["chat_id"]), "type": "private"},
                "from": BOT_USER,
                "text": params["text"],
            }
        else:  # sendChatAction, setWebhook, deleteWebhook, ...
            result = True
        return JSONResponse({"ok": True, "result": result})

    def sent(self, chat_id: int | None = None) -> list[str]:
        """Texts sent with sendMessage (to ``chat_id``, or to any chat), in order."""
        with self._lock:
            return [
                str(params["text"])
                for method, params in self.calls
                if method == "sendMessage"
                and (chat_id is None or int(params["chat_id"]) == chat_id)
            ]

    def sent_params(self) -> list[dict[str, Any]]:
        """The parameters of every sendMessage call, in order."""
        with self._lock:
            return [params for method, params in self.calls if method == "sendMessage"]

    def methods(self) -> list[str]:
        """The methods called, in order."""
        with self._lock:
            return [method for method, _ in self.calls]


async def _params(request: Request) -> dict[str, Any]:
    # python-telegram-bot posts form fields (JSON-encoded where not plain strings).
    if request.headers.get("content-type", "").startswith("application/json"):
        return dict(await request.json())
    form = await request.form()
    return {key: str(value) for key, value in form.items()}


def update(
    update_id: int, chat_id: int, user_id: int, text: str, topic: int | None = None
) -> dict[str, Any]:
    """A Telegram update carrying one text message (a command if ``text`` starts with /).

    With ``topic``, the message was written in that forum topic of a supergroup.
    """
    message: dict[str, Any] = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
        "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
        "text": text,
    }
    if topic is not None:
        message["chat"]["type"] = "supergroup"
        message["chat"]["is_forum"] = True
        message.update(message_thread_id=topic, is_topic_message=True)
    if text.startswith("/"):
        command = text.split(" ", 1)[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return {"update_id": update_id, "message": message}


def dumps(payload: dict[str, Any]) -> bytes:
    """The JSON body Telegram would POST."""
    return json.dumps(payload).encode()
