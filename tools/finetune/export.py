"""Export a PEFT LoRA adapter to a GGUF LoRA that llama.cpp applies to the base GGUF.

The converter is llama.cpp's ``convert_lora_to_gguf.py``, from the same llama-cpp-python
source the project builds (``LLAMA_VERSION`` in the Makefile), so the adapter format
matches the llama.cpp that loads it. The script, its ``conversion`` package and the
``gguf-py`` it imports are taken from the sdist once (``pip download``, a package
registry, never a model hub) into ``~/.cache/local-assistant/llama-convert/<version>``;
``make install`` does it ahead of time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
"""The llama-cpp-python release whose converter is used (keep equal to the Makefile's)."""
CONVERTER = "convert_lora_to_gguf.py"
# What the converter imports from its own directory.
_NEEDED = (CONVERTER, "conversion/", "gguf-py/")


class ExportError(RuntimeError):
    """The adapter cannot be exported (a user-facing message)."""


def default_converter_root() -> Path:
    """The shared cache of converter sources (beside the llama.cpp wheel cache)."""
    return Path.home() / ".cache" / "local-assistant" / "llama-convert"


def converter_dir(root: Path | None = None, version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """Where the converter of ``version`` lives once fetched."""
    return (root or default_converter_root()) / version


def _extract(sdist: Path, out: Path) -> None:
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            rel = member.name.removeprefix(prefix)
            if rel == member.name or not rel.startswith(_NEEDED) or not member.isfile():
                continue
            member.name = rel
            members.append(member)
        if not any(m.name == CONVERTER for m in members):
            raise ExportError(f"{sdist.name} has no vendor/llama.cpp/{CONVERTER}")
        tar.extractall(out, members=members, filter="data")


def ensure_converter(root: Path | None = None) -> Path:
    """The converter script, fetched from the llama-cpp-python sdist on first use.

    Args:
        root: Cache root; None = :func:`default_converter_root`.

    Returns:
        Path of ``convert_lora_to_gguf.py`` (its helpers beside it).

    Raises:
        ExportError: pip cannot download the sdist or it lacks the script.
    """
    target = converter_dir(root)
    script = target / CONVERTER
    if script.is_file():
        return script
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        # --no-deps --no-binary: only the source archive of this one package.
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary=:all:",
            f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
            "-d",
            tmp,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        sdists = sorted(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not sdists:
            last = (done.stderr.strip().splitlines() or ["no archive"])[-1]
            raise ExportError(
                f"cannot fetch llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}'s source for its "
                f"LoRA converter: {last}"
            )
        staging = Path(tmp) / "src"
        _extract(sdists[0], staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return script


def export_adapter(
    adapter_dir: Path,
    base_hf_dir: Path,
    out_file: Path,
    *,
    converter: Path | None = None,
    outtype: str = "f16",
) -> Path:
    """Convert a PEFT adapter directory to a GGUF LoRA file.

    Args:
        adapter_dir: ``adapter_config.json`` and ``adapter_model.safetensors``.
        base_hf_dir: The transformers directory the adapter was trained on (only its
            config is read).
        out_file: The GGUF to write.
        converter: The converter script; None = :func:`ensure_converter`.
        outtype: ``f32``, ``f16``, ``bf16`` or ``q8_0`` (f16 halves the file, same replies
            at greedy decoding in our test).

    Returns:
        ``out_file``.

    Raises:
        ExportError: A directory is missing or the converter failed (its last line).
    """
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ExportError(f"no PEFT adapter in {adapter_dir} (train the run first)")
    if not (base_hf_dir / "config.json").is_file():
        raise ExportError(f"no base model config in {base_hf_dir}")
    script = converter or ensure_converter()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(script),
        "--base",
        str(base_hf_dir),
        "--outfile",
        str(out_file),
        "--outtype",
        outtype,
        str(adapter_dir),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0 or not out_file.is_file():
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ExportError(f"{CONVERTER} failed: {lines[-1] if lines else done.returncode}")
    return out_file
