"""A stand-in for Telegram's Bot API on 127.0.0.1: answers getMe, records sendMessage.

Point python-telegram-bot at it with ``base_url=f"{url}/bot"`` (the setting
``telegram.api_base_url``). Every call is recorded as ``(method, params)``; a wrong token
gets Telegram's 401 answer. ``getChatMember`` answers from ``owners`` and ``admins``
(``(chat_id, user_id)`` pairs; anyone else is a plain member). ``send_errors`` makes the
next sendMessage calls fail as Telegram does (a flood limit, a bad gateway, a blocked bot);
those calls are recorded as ``sendMessage:failed``.
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
        self.owners: set[tuple[int, int]] = set()
        self.admins: set[tuple[int, int]] = set()
        self.member_error: str | None = None
        """When set, getChatMember fails with this description (Telegram's 400)."""
        self.send_errors: list[tuple[int, str, dict[str, Any]]] = []
        """The answers of the next sendMessage calls, one each: (HTTP status and
        error_code, description, parameters, e.g. ``{"retry_after": 0}``)."""
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
            error = (
                self.send_errors.pop(0) if method == "sendMessage" and self.send_errors else None
            )
            self.calls.append((f"{method}:failed" if error else method, params))
        if error is not None:
            status, description, parameters = error
            answer = {"ok": False, "error_code": status, "description": description}
            return JSONResponse(
                {**answer, "parameters": parameters} if parameters else answer, status
            )
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
        elif method == "getChatMember":
            if self.member_error:
                return JSONResponse(
                    {"ok": False, "error_code": 400, "description": self.member_error}, 400
                )
            result = self._member(int(params["chat_id"]), int(params["user_id"]))
        else:  # sendChatAction, setWebhook, deleteWebhook, ...
            result = True
        return JSONResponse({"ok": True, "result": result})

    def _member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        # The Bot API's ChatMember objects, with the fields python-telegram-bot requires.
        user = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        if (chat_id, user_id) in self.owners:
            return {"status": "creator", "user": user, "is_anonymous": False}
        if (chat_id, user_id) in self.admins:
            rights = [
                "can_be_edited",
                "can_manage_chat",
                "can_delete_messages",
                "can_manage_video_chats",
                "can_restrict_members",
                "can_promote_members",
                "can_change_info",
                "can_invite_users",
                "can_post_stories",
                "can_edit_stories",
                "can_delete_stories",
            ]
            return {
                "status": "administrator",
                "user": user,
                "is_anonymous": False,
                **dict.fromkeys(rights, False),
            }
        return {"status": "member", "user": user}

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


ANONYMOUS_ADMIN = 1087968824
"""The placeholder ``from`` of a message an administrator sends as the group
(Telegram's GroupAnonymousBot)."""


def update(
    update_id: int,
    chat_id: int,
    user_id: int,
    text: str,
    topic: int | None = None,
    *,
    as_chat: int | None = None,
) -> dict[str, Any]:
    """A Telegram update carrying one text message (a command if ``text`` starts with /).

    A negative ``chat_id`` is a group, a positive one the private chat with ``user_id``.
    With ``topic``, the message was written in that forum topic of a supergroup. With
    ``as_chat``, it was sent on behalf of that chat (an anonymous administrator writing as
    the group, or a linked channel): ``user_id`` is then Telegram's placeholder bot
    (``ANONYMOUS_ADMIN``, or 136817688 for a channel).
    """
    message: dict[str, Any] = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
        "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
        "text": text,
    }
    if as_chat is not None:
        message["from"] = {"id": user_id, "is_bot": True, "first_name": "Group"}
        message["sender_chat"] = {"id": as_chat, "type": "supergroup", "title": "A group"}
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
