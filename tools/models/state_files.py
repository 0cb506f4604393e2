"""Prompt states kept on disk, so a new process resumes a fixed prefix unevaluated.

The safety judge's fixed prefix (policy and worked examples) costs the default 1.5B model
about 15 s to evaluate, at the first uncertain message of every process: half of a
one-shot ``assistant chat -m`` turn. Its KV cells are the same every time for the same
weights, so they are written here once and read back by later processes.

A file is named by a digest of what its cells depend on (the model file, the adapter,
the context and batch sizes, llama-cpp-python's version) and of the tokens, and holds
the tokens, the backend's bytes and a checksum: a file from other weights is never
found, and a truncated or corrupt one is deleted and evaluated again, never restored.
Writes go to a temporary file renamed into place, so two processes writing the same
state leave one whole file. The folder is bounded: past ``capacity_bytes`` the files
read least recently go first.

Nothing here knows about llama.cpp; :mod:`tools.models.llamacpp` extracts and restores
the states.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.models.state_cache import Tokens, as_tokens

log = logging.getLogger(__name__)

MAGIC = b"LASTATE1"
_HEADER = struct.Struct("<8sQQ")  # magic, token count, data bytes
_DIGEST = hashlib.sha256().digest_size
SUFFIX = ".state"
PART = ".part"
# A part file older than this was left by a writer that died (a state is written in
# well under a second); younger ones may still be being written.
STALE_PART_SECONDS = 600.0


class StateFiles:
    """Backend states of fixed prompt prefixes in one folder, keyed by their tokens.

    Args:
        directory: The folder (made on the first write).
        identity: What the states depend on besides the tokens (the weights' file and
            the context's parameters); a state is only found with the same identity.
        capacity_bytes: Upper bound on the folder's state files, in bytes; 0 keeps none.

    Raises:
        ValueError: ``capacity_bytes`` is negative.
    """

    def __init__(self, directory: Path, identity: str, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be >= 0, got {capacity_bytes}")
        self.directory = directory
        self.identity = identity
        self.capacity_bytes = capacity_bytes

    def path(self, tokens: Tokens, key: str = "") -> Path:
        """The file of the state of ``tokens`` computed with the weights ``key``."""
        digest = hashlib.sha256()
        for part in (self.identity.encode(), key.encode(), tokens.tobytes()):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
        return self.directory / f"{digest.hexdigest()[:40]}{SUFFIX}"

    def load(self, tokens: Tokens, key: str = "") -> bytearray | None:
        """The saved bytes of the state of ``tokens``, or None when there is none whole.

        A file that cannot be read back whole (truncated, corrupt, other tokens) is
        deleted with a warning: the prefix is then evaluated and written again.
        """
        path = self.path(tokens, key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("prompt state %s cannot be read (%s); evaluating the prefix", path, exc)
            return None
        data = _parse(raw, tokens)
        if data is None:
            log.warning("prompt state %s is damaged; deleting it and evaluating the prefix", path)
            self.discard(tokens, key)
            return None
        # Read recently: pruned last (not in a read-only folder, nor once another process
        # pruned it meanwhile: the bytes are read all the same).
        with contextlib.suppress(OSError):
            os.utime(path)
        return data

    def discard(self, tokens: Tokens, key: str = "") -> None:
        """Delete the file of a state (one that the backend could not restore)."""
        try:
            self.path(tokens, key).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("prompt state %s not deleted: %s", self.path(tokens, key), exc)

    def save(self, tokens: Tokens, data: bytes | bytearray, key: str = "") -> Path | None:
        """Write the state of ``tokens``; returns its file (None when it was not kept).

        Not kept when it alone is over capacity or the folder cannot be written (a
        warning: the state then lives in this process only).
        """
        size = _HEADER.size + tokens.nbytes + len(data) + _DIGEST
        if size > self.capacity_bytes:
            return None
        path = self.path(tokens, key)
        body = _HEADER.pack(MAGIC, len(tokens), len(data)) + tokens.tobytes() + bytes(data)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=self.directory, prefix=".", suffix=PART, delete=False
            ) as part:
                part.write(body)
                part.write(hashlib.sha256(body).digest())
            os.replace(part.name, path)
        except OSError as exc:
            log.warning(
                "prompt state not written to %s: %s (model.state_files_mb = 0 stops trying)",
                self.directory,
                exc,
            )
            if "part" in locals():
                Path(part.name).unlink(missing_ok=True)
            return None
        self._prune(keep=path)
        return path

    def _prune(self, keep: Path) -> None:
        """Delete the least recently read files until the folder is within capacity.

        Part files that their writer left (it died mid-write) go too; another process
        pruning at the same time at worst deletes a file that is then evaluated again.
        """
        files: list[tuple[os.stat_result, Path]] = []
        stale = time.time() - STALE_PART_SECONDS
        try:
            for path in self.directory.iterdir():
                try:
                    stat = path.stat()
                    if path.name.endswith(PART) and stat.st_mtime < stale:
                        path.unlink()
                    elif path.name.endswith(SUFFIX):
                        files.append((stat, path))
                except OSError:
                    continue  # gone meanwhile (another process), or not ours to delete
        except OSError:
            return
        total = sum(stat.st_size for stat, _ in files)
        for stat, path in sorted(files, key=lambda f: f[0].st_mtime):
            if total <= self.capacity_bytes:
                break
            if path != keep:
                try:
                    path.unlink(missing_ok=True)
                except OSError:
                    continue
                total -= stat.st_size


def _parse(raw: bytes, tokens: Tokens) -> bytearray | None:
    """The state bytes of a file's contents ``raw``, if whole and of ``tokens``."""
    if len(raw) < _HEADER.size + _DIGEST:
        return None
    body, digest = raw[:-_DIGEST], raw[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        return None
    magic, count, size = _HEADER.unpack_from(body)
    start = _HEADER.size + count * 4
    if magic != MAGIC or len(body) != start + size:
        return None
    held = as_tokens(np.frombuffer(body[_HEADER.size : start], dtype=np.int32))
    if not np.array_equal(held, tokens):
        return None
    return bytearray(body[start:])
