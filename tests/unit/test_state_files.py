"""Prompt states on disk: found only for the same weights and tokens, never half read."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest

from tools.models.state_cache import as_tokens
from tools.models.state_files import StateFiles

TOKENS = as_tokens([1, 2, 3, 4, 5])
DATA = bytearray(os.urandom(4096))


def files(directory: Path, identity: str = "model A", capacity: int = 1 << 20) -> StateFiles:
    return StateFiles(directory, identity, capacity)


def test_a_saved_state_is_read_back_whole(tmp_path: Path) -> None:
    path = files(tmp_path).save(TOKENS, DATA)
    assert path is not None and path.exists()
    assert files(tmp_path).load(TOKENS) == DATA
    assert files(tmp_path).load(TOKENS, key="adapter.gguf") is None
    assert files(tmp_path).load(as_tokens([1, 2, 3, 4])) is None  # a prefix of them: no
    assert files(tmp_path / "none").load(TOKENS) is None


def test_states_of_other_weights_are_never_found(tmp_path: Path) -> None:
    files(tmp_path, "model A").save(TOKENS, DATA)
    assert files(tmp_path, "model B").load(TOKENS) is None
    files(tmp_path, "model B").save(TOKENS, b"other")
    assert files(tmp_path, "model A").load(TOKENS) == DATA


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],  # cut short (a crash while copying)
        lambda raw: raw[:10] + bytes([raw[10] ^ 1]) + raw[11:],  # one bit in the header
        lambda raw: raw[:-40] + bytes(40),  # the end zeroed
        lambda raw: b"",
        lambda raw: b"LASTATE1" + raw[8:-32] + bytes(32),  # a wrong checksum
    ],
    ids=["truncated", "header-bit", "zeroed-end", "empty", "checksum"],
)
def test_a_damaged_file_is_deleted_and_not_restored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: object
) -> None:
    path = files(tmp_path).save(TOKENS, DATA)
    assert path is not None
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with caplog.at_level(logging.WARNING):
        assert files(tmp_path).load(TOKENS) is None
    assert "damaged" in caplog.text and not path.exists()
    assert files(tmp_path).save(TOKENS, DATA) == path  # written again
    assert files(tmp_path).load(TOKENS) == DATA


def test_the_folder_keeps_the_most_recently_read_within_its_capacity(tmp_path: Path) -> None:
    one_file = len(files(tmp_path / "probe").save(TOKENS, DATA).read_bytes())  # type: ignore[union-attr]
    store = files(tmp_path / "states", capacity=2 * one_file)
    a, b, c = (as_tokens([n, n + 1]) for n in (10, 20, 30))
    store.save(a, DATA)
    store.save(b, DATA)
    os.utime(store.path(a), (1, 1))  # a is older, then read: newest
    os.utime(store.path(b), (2, 2))
    assert store.load(a) == DATA
    store.save(c, DATA)
    assert store.load(a) == DATA and store.load(c) == DATA
    assert store.load(b) is None  # read least recently: gone
    assert files(tmp_path, capacity=100).save(TOKENS, DATA) is None  # alone over capacity


def test_an_unwritable_folder_warns_and_keeps_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING):
        assert files(blocker / "states").save(TOKENS, DATA) is None
    assert "not written" in caplog.text


def test_writers_of_one_state_at_once_leave_one_whole_file(tmp_path: Path) -> None:
    states = [bytearray(os.urandom(1 << 16)) for _ in range(8)]
    threads = [
        threading.Thread(target=files(tmp_path).save, args=(TOKENS, data)) for data in states
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert files(tmp_path).load(TOKENS) in states
    assert [p.name for p in tmp_path.iterdir()] == [files(tmp_path).path(TOKENS).name]


def test_a_folder_that_cannot_be_changed_still_gives_its_states(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A read-only mount of states made elsewhere, or a file another process pruned
    # between the read and the touch: the check must not lose its judge over it.
    store = files(tmp_path)
    store.save(TOKENS, DATA)
    damaged = as_tokens([9, 9])
    store.save(damaged, DATA)
    store.path(damaged).write_bytes(b"half a state")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(os, "utime", refuse)
    monkeypatch.setattr(Path, "unlink", refuse)
    assert store.load(TOKENS) == DATA
    with caplog.at_level(logging.WARNING):
        assert store.load(damaged) is None
    assert "not deleted" in caplog.text


def test_part_files_a_dead_writer_left_are_pruned(tmp_path: Path) -> None:
    store = files(tmp_path)
    left = tmp_path / ".dead.part"
    left.write_bytes(bytes(1000))
    os.utime(left, (time.time() - 3600,) * 2)
    writing = tmp_path / ".now.part"  # another process writing it right now
    writing.write_bytes(bytes(1000))
    store.save(TOKENS, DATA)
    assert not left.exists() and writing.exists()


def test_a_negative_capacity_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="capacity_bytes"):
        files(tmp_path, capacity=-1)
