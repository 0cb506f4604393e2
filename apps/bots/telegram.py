"""The Telegram bot: python-telegram-bot in webhook mode behind a small Starlette app.

Telegram POSTs each update to ``telegram.webhook_path`` with the secret given to
``setWebhook`` in the ``X-Telegram-Bot-Api-Secret-Token`` header; a request without the
right secret is refused (403) before anything reads it. An accepted update goes onto the
:class:`telegram.ext.Application`'s queue and the request is answered at once; the handler
runs the turn in a worker thread and sends the reply with ``sendMessage``, split at
Telegram's 4096-character limit (counted in UTF-16 code units, as Telegram does).

Each chat is a thread ``telegram:<chat_id>`` (a forum topic: ``telegram:<chat_id>:<topic_id>``,
answered in that topic), each sender a user ``telegram:<user_id>``.
In a group the bot answers only what is addressed to it (a command, its ``@name``, a reply
to it): :func:`addressed_to_bot`.
Commands: ``/start`` and ``/help``, ``/reset``, ``/safety LEVEL`` (see :mod:`apps.bots.core`).
In a group only its administrators may ``/reset`` it or set its level: the bot asks the Bot
API (``getChatMember``) when someone tries; a message an administrator sends anonymously,
as the group itself, counts as theirs. In a private chat the user may.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from telegram import Bot, Message, Update
from telegram.constants import ChatAction, ChatMemberStatus, ChatType, MessageLimit
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from apps.bots.core import NOT_TEXT, BotConfigError, BotCore, ChatGuard, CheckFailed, SeenIds
from apps.bots.split import split_text, utf16_units

if TYPE_CHECKING:
    from graph.settings import Settings

log = logging.getLogger("assistant.bots.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
LIMIT = int(MessageLimit.MAX_TEXT_LENGTH)
"""Telegram's longest message text (python-telegram-bot's ``MessageLimit``): 4096."""

ADMINS = "this group's administrators"
"""Who may change a group, as the refusal names them."""

ADMIN_CHECK_TIMEOUT = 15.0
"""Seconds to wait for ``getChatMember`` before refusing the change as unchecked."""


def chat_key(chat_id: int, topic: int | None = None) -> str:
    """The thread id of a Telegram chat, or of one forum topic in it."""
    return f"telegram:{chat_id}:{topic}" if topic is not None else f"telegram:{chat_id}"


def user_key(user_id: int) -> str:
    """The user id of a Telegram sender."""
    return f"telegram:{user_id}"


def secrets_of(settings: Settings) -> tuple[str, str]:
    """The bot token and the webhook secret.

    Raises:
        BotConfigError: One of them is not set.
    """
    token = settings.telegram.token
    secret = settings.telegram.webhook_secret
    if token is None or not token.get_secret_value():
        raise BotConfigError("telegram.token is not set (ASSISTANT_TELEGRAM__TOKEN)")
    if secret is None:
        raise BotConfigError(
            "telegram.webhook_secret is not set (ASSISTANT_TELEGRAM__WEBHOOK_SECRET): "
            "without it anyone could send the bot updates"
        )
    return token.get_secret_value(), secret.get_secret_value()


def check_token(settings: Settings) -> str:
    """Ask the Bot API who the bot is (``getMe``): a bad token fails here, not on a message.

    Returns:
        The bot's username.

    Raises:
        BotConfigError: The token or secret is not set, the Bot API cannot be reached, or
            it refused the token.
    """
    token, _ = secrets_of(settings)

    async def get_me() -> str:
        async with Bot(token, base_url=settings.telegram.api_base_url) as bot:
            return bot.username

    try:
        return asyncio.run(get_me())
    except TelegramError as exc:
        raise BotConfigError(
            f"the Bot API at {settings.telegram.api_base_url} refused the token or cannot be "
            f"reached: {exc}"
        ) from None


def incoming_text(text: str, username: str | None) -> str:
    """A message as the question it asks: the bot's own ``@username`` taken out.

    In a group a member writes "@SomeBot ELI5 DNS"; the model should read "ELI5 DNS" (as
    a command such as ``eli5`` selects its prompt only when it leads the request), the
    same as the Slack bot drops its mention. Other @names are part of the text.
    """
    if not username:
        return text
    # The name, a comma or colon after it ("@SomeBot, ..."), and the blanks that follow.
    mention = re.compile(rf"(?<![\w@])@{re.escape(username)}(?!\w)[,:]?[ \t]*", re.IGNORECASE)
    return mention.sub("", text).strip()


def addressed_to_bot(message: Message, bot: Bot) -> bool:
    """Whether a group message is for the bot: a command, its ``@name``, a reply to it.

    What Telegram's privacy mode (on by default) lets a bot see of a group. A bot without
    it, or an administrator of the group, sees every message: answering each would talk
    over the members and hold the model for all of them, so the rest is theirs alone
    (as the Slack bot answers only its mentions in a channel).
    """
    text = (message.text or "").strip()
    if text.startswith("/"):  # a command (one for another bot is left before this)
        return True
    if bot.username and incoming_text(text, bot.username) != text:
        return True
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == bot.id


def addressed_elsewhere(text: str, username: str | None) -> bool:
    """Whether ``text`` is a command addressed to another bot ("/reset@OtherBot").

    In groups, Telegram writes a command as ``/command@BotName`` so that each bot of the
    group knows its own; usernames compare case-insensitively.
    https://core.telegram.org/bots/features#commands
    """
    text = text.strip()  # as BotCore.handle reads it
    if not text.startswith("/"):
        return False
    command = text[1:].split(maxsplit=1)[0] if text[1:].strip() else ""
    command_name, at, name = command.partition("@")
    if not (at and command_name.isidentifier()):  # "/home/me@host" is a message
        return False
    return username is None or name.lower() != username.lower()


def group_guard(bot: Bot, message: Message, loop: asyncio.AbstractEventLoop) -> ChatGuard | None:
    """Who may change the chat ``message`` was sent in; None in a private chat.

    The guard's check runs in a worker thread (the bot's turns do) and asks the Bot API on
    ``loop``, the event loop ``bot`` belongs to.
    """
    chat = message.chat
    if chat.type == ChatType.PRIVATE:
        return None
    sender = message.from_user
    # An administrator writing anonymously sends as the group itself (Telegram lets only
    # administrators do so); from_user is then a placeholder bot account.
    as_group = message.sender_chat is not None and message.sender_chat.id == chat.id

    async def is_admin() -> bool:
        if as_group:
            return True
        if sender is None:
            return False
        member = await bot.get_chat_member(chat.id, sender.id)
        return member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)

    def allowed() -> bool:
        future = asyncio.run_coroutine_threadsafe(is_admin(), loop)
        try:
            return future.result(timeout=ADMIN_CHECK_TIMEOUT)
        except (RetryAfter, TimedOut) as exc:  # a flood limit or a slow answer: may pass
            raise CheckFailed(f"Telegram answered: {exc}", transient=True) from None
        except (BadRequest, Forbidden) as exc:  # the same each time ("member list is...")
            raise CheckFailed(f"Telegram answered: {exc}", transient=False) from None
        except NetworkError as exc:  # BadRequest is one too: only the network is left
            raise CheckFailed(f"Telegram could not be reached: {exc}", transient=True) from None
        except TelegramError as exc:  # another refusal (the chat moved, the token)
            raise CheckFailed(f"Telegram answered: {exc}", transient=False) from None
        finally:
            future.cancel()  # no-op once done; stops a call that outlived the wait

    return ChatGuard(allowed=allowed, who=ADMINS)


SEND_ATTEMPTS = 4
"""Tries per piece of a reply before the rest of it is given up (and logged)."""

MAX_RETRY_AFTER = 60.0
"""The longest flood-limit wait honoured before a piece is tried again, in seconds."""


async def deliver(bot: Bot, chat_id: int, pieces: list[str], topic: int | None = None) -> bool:
    """Send a reply's pieces in order, each tried again when Telegram could not take it.

    A flood limit (``RetryAfter``: Telegram allows about 20 messages a minute in a group,
    which a long reply split in pieces soon reaches) is waited out; a connection that
    failed before Telegram answered is tried again after a short pause. Neither sent the
    piece, so trying again cannot send it twice. A timeout may have sent it, and a refusal
    (``BadRequest``, ``Forbidden``: the bot was blocked or removed) answers the same way
    every time: the reply is given up at once. Once a piece is given up the later ones are
    not sent either (a reply with a hole in it would read as whole); it is logged.

    Returns:
        Whether every piece was sent.
    """
    for at, piece in enumerate(pieces):
        attempt = 0
        while True:
            attempt += 1
            try:
                await bot.send_message(chat_id, piece, message_thread_id=topic)
                break
            except TelegramError as exc:
                wait = _retry_wait(exc, attempt)
                if wait is None or attempt >= SEND_ATTEMPTS:
                    log.error(
                        "reply to chat %s not delivered: piece %d of %d failed (%s); %d "
                        "piece(s) not sent (the turn is kept in the chat's thread)",
                        chat_id,
                        at + 1,
                        len(pieces),
                        exc,
                        len(pieces) - at,
                    )
                    return False
                log.warning("sendMessage to chat %s failed (%s); trying again", chat_id, exc)
                await asyncio.sleep(wait)
    return True


def _retry_wait(exc: TelegramError, attempt: int) -> float | None:
    """Seconds to wait before sending a piece again; None: it cannot help, or may repeat it."""
    if isinstance(exc, RetryAfter):
        return min(_seconds(exc.retry_after), MAX_RETRY_AFTER)
    if isinstance(exc, BadRequest | TimedOut):  # NetworkErrors that are no lost connection
        return None
    if isinstance(exc, NetworkError):
        return 0.5 * attempt
    return None  # Forbidden (blocked, removed from the group), a moved chat, ...


def _seconds(value: object) -> float:
    # python-telegram-bot gives an int, or a timedelta where PTB_TIMEDELTA is set.
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) if isinstance(value, int | float) else 1.0


def build_application(
    settings: Settings, core: BotCore
) -> Application[Any, Any, Any, Any, Any, Any]:
    """The python-telegram-bot application: one handler for every text message.

    Raises:
        BotConfigError: The token or the webhook secret is not set.
    """
    token, _ = secrets_of(settings)
    application = (
        Application.builder()
        .token(token)
        .base_url(settings.telegram.api_base_url)
        .updater(None)  # updates come from our webhook route, not from polling
        .concurrent_updates(8)  # one chat's slow turn must not hold up the others
        .build()
    )

    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        chat = update.effective_chat
        sender = update.effective_user
        if message is None or chat is None or message.text is None:
            return
        if addressed_elsewhere(message.text, context.bot.username):
            return  # "/reset@OtherBot" in a group is for the other bot
        if chat.type != ChatType.PRIVATE and not addressed_to_bot(message, context.bot):
            return  # the members' own talk (seen when privacy mode is off or the bot admin)
        text = incoming_text(message.text, context.bot.username)
        who = user_key(sender.id) if sender is not None else chat_key(chat.id)
        try:
            await context.bot.send_chat_action(chat.id, ChatAction.TYPING)
        except TelegramError as exc:  # only a courtesy: the reply must still come
            log.warning("sendChatAction failed: %s", exc)
        # A forum topic is a conversation of its own, answered in that topic.
        topic = message.message_thread_id if message.is_topic_message else None
        thread = chat_key(chat.id, topic)
        guard = group_guard(context.bot, message, asyncio.get_running_loop())
        # A forum topic searches its group's documents.
        reply = await asyncio.to_thread(
            core.handle, thread, who, text, "/", guard, room=chat_key(chat.id)
        )
        await deliver(context.bot, chat.id, split_text(reply, LIMIT, utf16_units), topic)

    async def on_not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        # A photo, voice note, sticker or file in a private chat: said so, not silence.
        chat = update.effective_chat
        if chat is not None:
            await deliver(context.bot, chat.id, [NOT_TEXT])

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("update failed: %s", context.error, exc_info=context.error)

    # New text messages only: an edited message is not a new question.
    application.add_handler(MessageHandler(filters.TEXT & filters.UpdateType.MESSAGE, on_text))
    # In a group, what is not text is not for the bot (a photo shared with the members).
    application.add_handler(
        MessageHandler(
            filters.ChatType.PRIVATE
            & filters.UpdateType.MESSAGE
            & ~filters.TEXT
            & ~filters.StatusUpdate.ALL,
            on_not_text,
        )
    )
    application.add_error_handler(on_error)
    return application


def create_app(settings: Settings, core: BotCore, *, public_url: str | None = None) -> Starlette:
    """The webhook server: Telegram's updates in, replies out through the Bot API.

    Args:
        settings: The assistant's settings (``telegram`` section).
        core: The bot's turns and commands.
        public_url: The HTTPS address Telegram reaches this server at; when given, the
            webhook (with its secret) is registered with ``setWebhook`` at start-up.

    Raises:
        BotConfigError: The token or the webhook secret is not set.
    """
    _, secret = secrets_of(settings)
    application = build_application(settings, core)
    path = settings.telegram.webhook_path
    seen = SeenIds()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with application:  # getMe: a wrong token fails here, at start-up
            if public_url:
                await application.bot.set_webhook(
                    public_url.rstrip("/") + path,
                    secret_token=secret,
                    allowed_updates=["message"],
                )
            await application.start()
            try:
                yield
            finally:
                await application.stop()

    async def webhook(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        # Constant-time comparison: the secret is the only thing between us and forgeries.
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return PlainTextResponse("forbidden", status_code=403)
        try:
            data = await request.json()
            update = Update.de_json(data, application.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            return PlainTextResponse("not a Telegram update", status_code=400)
        if seen.first_time(update.update_id):
            await application.update_queue.put(update)
        return Response(status_code=200)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route(path, webhook, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
