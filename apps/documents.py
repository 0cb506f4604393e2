"""Whose documents a turn searches: one rule for the page, the API and the bots.

Documents are per user, like threads and long-term memories. Every front end maps the
user of a turn to a document collection with :func:`collection_of`, so one user name
reaches one collection from the page and from the API:

- ``chroma.shared = true`` (a team's server): everyone's turns search
  ``chroma.collection``, the one ``assistant ingest`` fills.
- Otherwise the machine's own user (``long_term.user_id``: the CLI's user) keeps
  ``chroma.collection``, and every other user has a collection of their own
  (:func:`user_collection`), empty until they upload to it on the page.

The bots pass the chat (``telegram:<chat_id>``), not the sender: a reply in a group is
read by every member, so it may only draw on documents the chat has, never on one
member's own (:mod:`apps.bots.core`).

Sources leave the process through :func:`public_source`: file name, page or section and
score, never where the file lies on the server.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from graph.settings import Settings

COLLECTION_PREFIX = "user-"
"""Start of every per-user collection name (apart from the shared ``chroma.collection``)."""
SLUG_CHARS = 36
"""Longest readable part of a per-user collection name."""
HASH_CHARS = 16
"""Hex digits of the name's SHA-256 in a per-user collection name (64 bits)."""

PUBLIC_SOURCE_KEYS = ("name", "page", "section", "score")
"""What a source shows outside the process: no ``source`` (the file's path on the server)
and no ``id`` (a chunk id is derived from that path)."""


class NoUserError(ValueError):
    """A turn with no user name cannot be given a collection."""


def user_collection(user: str) -> str:
    """The document collection of one user: ``user-<slug>-<hash>``.

    Valid for Chroma whatever the name (3-63 characters of ``[a-z0-9-]``, starting and
    ending with a letter or digit, no ``..``) and the same in every process. The slug is
    for people reading the store's listing: the name in ASCII (accents dropped), lower
    case, every other run of characters one ``-``, at most :data:`SLUG_CHARS`; it may be
    empty (a name in another script). The hash, the first :data:`HASH_CHARS` hex digits
    of the SHA-256 of the exact name, keeps apart names with the same slug ("Ana María",
    "ana maria", "ANA-MARIA" are three users, as they are for threads).

    Args:
        user: The user name (any non-empty text).

    Returns:
        The collection name, e.g. ``user-ana-maria-8358ed271ba38466`` (at most 58 chars).

    Raises:
        NoUserError: The name is empty.
    """
    if not user:
        raise NoUserError("no user name: a collection is per user")
    ascii_name = unicodedata.normalize("NFKD", user).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:SLUG_CHARS].strip("-")
    digest = hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    return f"{COLLECTION_PREFIX}{slug + '-' if slug else ''}{digest}"


def collection_of(settings: Settings, user: str) -> str:
    """The collection a user's turns search (and the page uploads into and lists).

    Args:
        settings: The assistant's settings (``chroma.shared``, ``chroma.collection``,
            ``long_term.user_id``).
        user: The user of the turn, as the front end checked it (the page's user name,
            the API's ``user`` or ``api.anonymous_user``, a bot's chat).

    Returns:
        ``chroma.collection`` when documents are shared or for the machine's user, else
        :func:`user_collection` of the name.

    Raises:
        NoUserError: The name is empty.
    """
    if not user:
        raise NoUserError("no user name: a collection is per user")
    if settings.chroma.shared or user == settings.long_term.user_id:
        return settings.chroma.collection
    return user_collection(user)


def public_source(source: Mapping[str, Any]) -> dict[str, Any]:
    """A retrieved passage as it may leave the process: without the server's file path.

    Args:
        source: One of the state's ``sources`` (``source``, ``name``, ``page``,
            ``section``, ``score``, ``text``, ``id``).

    Returns:
        Its :data:`PUBLIC_SOURCE_KEYS` (missing ones None); ``name`` is the file name,
        taken from the path when the passage has none.
    """
    public = {key: source.get(key) for key in PUBLIC_SOURCE_KEYS}
    if not public["name"]:
        path = str(source.get("source") or "")
        public["name"] = re.split(r"[\\/]", path)[-1] or None
    return public
