"""The Slack bot: a Bolt app (Events API and one slash command over HTTP) behind Starlette.

Bolt checks every request's signature (``X-Slack-Signature``, HMAC-SHA256 of the body with
the app's signing secret, and ``X-Slack-Request-Timestamp`` no older than five minutes)
before any listener runs: a forged or replayed request gets 401. The bot answers:

- a mention (``app_mention``) in a channel, in that channel or, if the mention is inside a
  Slack thread, in that thread;
- every message in a direct message with the bot (``message`` events of ``im`` channels);
  one that shares a file gets a reply that only text is read;
- the slash command (``slack.command``, default ``/assistant``): ``/assistant QUESTION``,
  ``/assistant reset``, ``/assistant safety LEVEL``, ``/assistant help``.

In messages, commands start with ``!`` (Slack keeps ``/`` for its own commands):
``!reset``, ``!safety LEVEL``, ``!help``.

Who may reset a conversation or set its safety level: in a direct message, its people (the
user and the bot, or the two people of a DM the slash command is used in); in a channel, a
group DM or a Slack thread, only the workspace's admins and owners (``users.info``, which
needs the ``users:read`` scope) and the user ids listed in ``slack.admins``. Slack has no
per-channel administrators an app can ask about, so the workspace's roles and a list the
operator keeps are what there is.

Threads: a channel or DM is ``slack:<team>:<channel>``; a Slack thread (a mention replied
in a thread) is its own assistant thread ``slack:<team>:<channel>:<thread_ts>``, so a side
discussion does not mix with the channel's. Senders are ``slack:<team>:<user>``.

Replies are escaped (``& < >``), so the model's text can never ping ``<!channel>`` or hide
a link, and split at 3000 characters after escaping: the most a ``section`` block's text
may hold (``slack_sdk.models.blocks.SectionBlock.text_max_length``), well under the 40,000
at which Slack truncates a message's ``text``
(https://api.slack.com/changelog/2018-04-truncating-really-long-messages) and under the
4,000 chat.postMessage's documentation advises for readable messages.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.adapter.starlette import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.http_retry import RateLimitErrorRetryHandler, default_retry_handlers
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from apps.bots.core import NOT_TEXT, BotConfigError, BotCore, ChatGuard, CheckFailed, SeenIds
from apps.bots.split import split_text

if TYPE_CHECKING:
    from graph.settings import Settings

log = logging.getLogger("assistant.bots.slack")

LIMIT = 3000
"""Characters per message (after escaping): a section block's text limit, see above."""

COMMANDS = ("reset", "safety", "help")
"""Words that make ``/assistant WORD ...`` a command rather than a question."""

_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


def chat_key(team: str, channel: str, thread_ts: str | None = None) -> str:
    """The assistant thread of a Slack channel, or of one Slack thread in it.

    Periods in ``thread_ts`` become ``-``: the id also names a store namespace, whose
    labels cannot hold periods.
    """
    key = f"slack:{team}:{channel}"
    return f"{key}:{thread_ts.replace('.', '-')}" if thread_ts else key


def user_key(team: str, user: str) -> str:
    """The user id of a Slack sender."""
    return f"slack:{team}:{user}"


def escape(text: str) -> str:
    """Text as Slack shows it literally: ``& < >`` escaped, so nothing becomes a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escaped_length(text: str) -> int:
    """Characters ``text`` takes once escaped (what Slack's limit counts)."""
    return len(escape(text))


def incoming_text(text: str) -> str:
    """A message as the user typed it: mentions removed, Slack's escapes undone."""
    text = _MENTION.sub(" ", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def secrets_of(settings: Settings) -> tuple[str, str]:
    """The bot token and the signing secret.

    Raises:
        BotConfigError: One of them is not set.
    """
    token = settings.slack.bot_token
    secret = settings.slack.signing_secret
    if token is None or not token.get_secret_value():
        raise BotConfigError("slack.bot_token is not set (ASSISTANT_SLACK__BOT_TOKEN)")
    if secret is None or not secret.get_secret_value():
        raise BotConfigError(
            "slack.signing_secret is not set (ASSISTANT_SLACK__SIGNING_SECRET): without it "
            "anyone could send the bot events"
        )
    return token.get_secret_value(), secret.get_secret_value()


def check_token(settings: Settings) -> str:
    """Ask Slack who the bot is (``auth.test``): a bad token fails here, not on a message.

    Returns:
        The bot's user name.

    Raises:
        BotConfigError: The token or secret is not set, Slack cannot be reached, or it
            refused the token.
    """
    from slack_sdk.errors import SlackApiError

    token, _ = secrets_of(settings)
    try:
        answer = WebClient(token=token, base_url=settings.slack.api_base_url).auth_test()
    except (SlackApiError, OSError) as exc:  # urllib's URLError is an OSError
        raise BotConfigError(
            f"Slack at {settings.slack.api_base_url} refused the bot token or cannot be "
            f"reached: {exc}"
        ) from None
    return str(answer.get("user", ""))


# users.info errors that may pass when asked again; any other (user_not_found,
# invalid_auth, account_inactive...) answers the same way every time.
PASSING_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
NO_USERS_READ = frozenset({"missing_scope", "not_allowed_token_type"})


def channel_guard(client: WebClient, settings: Settings, user: str) -> ChatGuard:
    """Who may change a shared conversation (a channel, a group DM, a Slack thread).

    The sender may when ``slack.admins`` lists them or Slack says they are a workspace
    admin or owner. Without the ``users:read`` scope only the list counts (logged), and the
    reply to anyone else says so. Another ``users.info`` error raises :class:`CheckFailed`,
    transient for a rate limit or a server error.
    """
    from slack_sdk.errors import SlackApiError

    listed = set(settings.slack.admins)
    roles_seen = True  # False once Slack says the bot may not read users' roles

    def allowed() -> bool:
        nonlocal roles_seen
        if user in listed:
            return True
        try:
            info = client.users_info(user=user)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error in NO_USERS_READ:
                log.warning("users.info needs the users:read scope: only slack.admins count")
                roles_seen = False
                return False
            status = exc.response.status_code
            transient = error in PASSING_ERRORS or status == 429 or status >= 500
            raise CheckFailed(
                f"Slack answered {error or f'HTTP {status}'} to users.info", transient=transient
            ) from None
        found = info.get("user") or {}
        return bool(found.get("is_admin") or found.get("is_owner"))

    def who() -> str:
        if roles_seen:
            return "this workspace's admins" + (" and the bot's own admins" if listed else "")
        # Without users:read the bot cannot tell a workspace admin from anyone else.
        return (
            "the bot's own admins (slack.admins"
            + ("" if listed else ", which lists nobody")
            + "; the bot has no users:read scope to see this workspace's admins)"
        )

    return ChatGuard(allowed=allowed, who=who)


RATE_LIMIT_RETRIES = 3
"""Times a Web API call Slack rate-limited (HTTP 429) is sent again, after ``Retry-After``."""


def web_client(settings: Settings, token: str) -> WebClient:
    """The bot's Web API client: a rate-limited call waits as Slack asks and goes again.

    Slack answers a burst (a long reply's pieces, ``chat.postMessage`` allows about one a
    second per channel) with 429 and ``Retry-After``; slack_sdk's default client retries
    only a broken connection, so the rest of the reply would be lost.
    """
    handlers = [
        *default_retry_handlers(),
        RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
    ]
    return WebClient(token=token, base_url=settings.slack.api_base_url, retry_handlers=handlers)


def post(client: WebClient, channel: str, pieces: list[str], thread_ts: str | None) -> bool:
    """Post a reply's pieces in order; a refused piece gives the rest up (logged).

    Returns:
        Whether every piece was posted.
    """
    from slack_sdk.errors import SlackApiError

    for at, piece in enumerate(pieces):
        try:
            client.chat_postMessage(channel=channel, text=escape(piece), thread_ts=thread_ts)
        except (SlackApiError, OSError) as exc:  # not_in_channel, still rate-limited, ...
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else repr(exc)
            # A later piece alone would read as the whole reply.
            log.error(
                "reply to channel %s not delivered: piece %d of %d failed (%s); %d piece(s) "
                "not sent (the turn is kept in the chat's thread)",
                channel,
                at + 1,
                len(pieces),
                error,
                len(pieces) - at,
            )
            return False
    return True


def build_bolt_app(settings: Settings, core: BotCore) -> App:
    """The Bolt app with the bot's listeners; checks the token with ``auth.test``.

    Raises:
        BotConfigError: The token or the signing secret is not set.
        slack_bolt.error.BoltError: Slack refused the token.
    """
    token, secret = secrets_of(settings)
    client = web_client(settings, token)
    app = App(
        client=client,
        signing_secret=secret,
        # Both are Bolt's defaults; spelled out because the bot's safety rests on them.
        request_verification_enabled=True,
        ignoring_self_events_enabled=True,
        # Acknowledge at once and answer from a worker thread: Slack wants its 200 within
        # three seconds and retries otherwise, and a turn takes longer.
        process_before_response=False,
    )

    seen = SeenIds()

    def redelivered(body: dict[str, Any]) -> bool:
        # Slack delivers an event again (X-Slack-Retry-Num) when the first ack was late.
        event_id = body.get("event_id")
        return event_id is not None and not seen.first_time(event_id)

    def answer(event: dict[str, Any], body: dict[str, Any]) -> None:
        """Answer a person's message event (a mention or a direct message) in its thread."""
        team = str(event.get("team") or body.get("team_id") or "")
        channel, thread_ts = str(event["channel"]), event.get("thread_ts")
        text = incoming_text(str(event.get("text", "")))
        chat = chat_key(team, channel, thread_ts)
        sender = str(event["user"])
        # A direct message with the bot is the user's own; anything else is shared.
        direct = event.get("channel_type") == "im"
        guard = None if direct else channel_guard(client, settings, sender)
        room = chat_key(team, channel)  # a Slack thread searches its channel's documents
        reply = core.handle(chat, user_key(team, sender), text, "!", guard, room=room)
        post(client, channel, split_text(reply, LIMIT, escaped_length), thread_ts)

    @app.event("app_mention")
    def on_mention(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("bot_id") or "user" not in event or redelivered(body):
            return
        answer(event, body)

    @app.event("message")
    def on_message(event: dict[str, Any], body: dict[str, Any]) -> None:
        # Channel messages reach the bot as mentions (above); here only direct messages,
        # and only what a person wrote (no edits, joins, bot posts).
        if event.get("channel_type") != "im" or event.get("bot_id"):
            return
        subtype = event.get("subtype")
        if subtype not in (None, "file_share") or "user" not in event or redelivered(body):
            return
        if subtype == "file_share":
            # A file (with or without a question): it never reaches the model, so the
            # question alone would be answered as if the file were read. Said so instead.
            post(client, str(event["channel"]), [NOT_TEXT], event.get("thread_ts"))
            return
        answer(event, body)

    @app.command(settings.slack.command)
    def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        ack()
        text = incoming_text(str(command.get("text", "")))
        word = text.split(" ", 1)[0].lower()
        is_command = word in COMMANDS or not text
        if is_command:
            text = "!" + text if text else "!help"
        team, channel = str(command.get("team_id", "")), str(command.get("channel_id", ""))
        sender = str(command.get("user_id", ""))
        # A DM (with the bot, or between two people) is its people's own; Slack names it
        # "directmessage" in the signed payload.
        direct = command.get("channel_name") == "directmessage"
        guard = None if direct else channel_guard(client, settings, sender)
        reply = core.handle(chat_key(team, channel), user_key(team, sender), text, "!", guard)
        # Command replies only the user sees; answers in the channel, under the question.
        kind = "ephemeral" if is_command else "in_channel"
        for piece in split_text(reply, LIMIT, escaped_length):
            respond(text=escape(piece), response_type=kind)

    return app


def create_app(settings: Settings, core: BotCore) -> Starlette:
    """The Slack request URL (events and the slash command) and ``/healthz``.

    Raises:
        BotConfigError: The token or the signing secret is not set.
        slack_bolt.error.BoltError: Slack refused the token.
    """
    handler = SlackRequestHandler(build_bolt_app(settings, core))

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route(settings.slack.events_path, events, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )
