"""A stand-in for Slack's Web API on 127.0.0.1, and signed requests to send a Bolt app.

Point ``WebClient(base_url=f"{url}/api/")`` (the setting ``slack.api_base_url``) at it: it
answers ``auth.test``, records ``chat.postMessage`` and what is posted to a slash command's
``response_url`` (``f"{url}/response/<name>"``). A wrong bot token gets ``invalid_auth``.
``users.info`` says a user is a workspace admin when ``admins`` holds their id (or answers
``missing_scope`` when ``users_read`` is False, as for an app without ``users:read``, or
``users_info_error``, an HTTP status and Slack error code, when it is set).
``post_errors`` makes the next chat.postMessage calls fail (a rate limit, a channel the
bot is not in); those calls are recorded as ``chat.postMessage:failed``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

TEAM = "T0TEAM"
BOT_USER = "U0BOT"


class FakeSlack:
    """The Web API methods the bot calls, with every call kept for the test."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.admins: set[str] = set()
        self.users_read = True
        self.users_info_error: tuple[int, str] | None = None
        self.post_errors: list[tuple[int, str]] = []
        """The answers of the next chat.postMessage calls, one each: (HTTP status, Slack
        error code); a 429 says ``Retry-After: 0``."""
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._method, methods=["GET", "POST"]),
                Route("/response/{name}", self._response, methods=["POST"]),
            ]
        )

    async def _method(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        params = await _params(request)
        with self._lock:
            failed = (
                self.post_errors.pop(0)
                if method == "chat.postMessage" and self.post_errors
                else None
            )
            self.calls.append((f"{method}:failed" if failed else method, params))
        if failed is not None:
            status, error = failed
            headers = {"Retry-After": "0"} if status == 429 else None
            return JSONResponse({"ok": False, "error": error}, status, headers=headers)
        if method == "auth.test":
            return JSONResponse(
                {
                    "ok": True,
                    "url": "https://example.slack.com/",
                    "team": "Test team",
                    "user": "assistant",
                    "team_id": TEAM,
                    "user_id": BOT_USER,
                    "bot_id": "B0BOT",
                }
            )
        if method == "chat.postMessage":
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            message = {"type": "message", "text": params.get("text"), "ts": ts, "user": BOT_USER}
            return JSONResponse(
                {"ok": True, "channel": params.get("channel"), "ts": ts, "message": message}
            )
        if method == "users.info":
            if self.users_info_error is not None:
                status, error = self.users_info_error
                return JSONResponse({"ok": False, "error": error}, status_code=status)
            if not self.users_read:
                return JSONResponse({"ok": False, "error": "missing_scope", "needed": "users:read"})
            user = str(params.get("user"))
            admin = user in self.admins
            return JSONResponse(
                {
                    "ok": True,
                    "user": {"id": user, "team_id": TEAM, "is_admin": admin, "is_owner": False},
                }
            )
        return JSONResponse({"ok": True})

    async def _response(self, request: Request) -> Response:
        params = dict(await request.json())
        with self._lock:
            self.calls.append((f"response:{request.path_params['name']}", params))
        return PlainTextResponse("ok")

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        """The chat.postMessage calls (to ``channel``, or to any), in order."""
        with self._lock:
            return [
                params
                for method, params in self.calls
                if method == "chat.postMessage"
                and (channel is None or params.get("channel") == channel)
            ]

    def responses(self, name: str) -> list[dict[str, Any]]:
        """What was posted to the response URL ``name``, in order."""
        with self._lock:
            return [params for method, params in self.calls if method == f"response:{name}"]


async def _params(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        return dict(await request.json())
    form = await request.form()
    return {key: str(value) for key, value in form.items()}


def signed(
    secret: str, body: str, *, timestamp: int | None = None, content_type: str
) -> dict[str, str]:
    """Headers Slack would send with ``body``: its timestamp and signature."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": str(signature),
        "Content-Type": content_type,
    }


_event_ids = itertools.count(1)


def event_body(event: dict[str, Any], team: str = TEAM) -> str:
    """An Events API callback carrying ``event``, as JSON text."""
    return json.dumps(
        {
            "token": "unused-verification-token",
            "team_id": team,
            "api_app_id": "A0APP",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(_event_ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": team, "user_id": BOT_USER, "is_bot": True, "enterprise_id": None}
            ],
        }
    )


def mention(channel: str, user: str, text: str, thread_ts: str | None = None) -> dict[str, Any]:
    """An ``app_mention`` event: ``text`` after the bot's mention."""
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER}> {text}",
        "ts": f"{time.time():.6f}",
        "channel": channel,
        "team": TEAM,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def direct_message(channel: str, user: str, text: str, **extra: Any) -> dict[str, Any]:
    """A ``message`` event in a direct message with the bot."""
    return {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "ts": f"{time.time():.6f}",
        "channel": channel,
        "team": TEAM,
        **extra,
    }


def command_body(
    command: str,
    text: str,
    response_url: str,
    channel: str,
    user: str,
    channel_name: str | None = None,
) -> str:
    """A slash command's form body; ``channel_name`` defaults to Slack's: "directmessage"
    for a DM (an id starting with D), else a channel name."""
    if channel_name is None:
        channel_name = "directmessage" if channel.startswith("D") else "general"
    return urlencode(
        {
            "token": "unused-verification-token",
            "team_id": TEAM,
            "channel_id": channel,
            "channel_name": channel_name,
            "user_id": user,
            "command": command,
            "text": text,
            "response_url": response_url,
            "trigger_id": "1.2.3",
            "api_app_id": "A0APP",
        }
    )
