"""The LoRA converter taken from the llama-cpp-python sdist, and export's errors."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tools.finetune.export import (
    CONVERTER,
    LLAMA_CPP_PYTHON_VERSION,
    ExportError,
    _extract,
    ensure_converter,
    export_adapter,
)

PREFIX = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"


def _sdist(path: Path, names: list[str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            data = f"# {name}\n".encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_only_the_converter_and_what_it_imports_are_extracted(tmp_path: Path) -> None:
    sdist = _sdist(
        tmp_path / "s.tar.gz",
        [
            PREFIX + CONVERTER,
            PREFIX + "conversion/__init__.py",
            PREFIX + "gguf-py/gguf/__init__.py",
            PREFIX + "convert_hf_to_gguf.py",
            PREFIX + "ggml/src/ggml.c",
            f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/llama_cpp/llama.py",
        ],
    )
    out = tmp_path / "out"
    _extract(sdist, out)
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert found == sorted([CONVERTER, "conversion/__init__.py", "gguf-py/gguf/__init__.py"])


def test_an_sdist_without_the_converter_is_an_error(tmp_path: Path) -> None:
    sdist = _sdist(tmp_path / "s.tar.gz", [PREFIX + "conversion/__init__.py"])
    with pytest.raises(ExportError, match=f"no vendor/llama.cpp/{CONVERTER}"):
        _extract(sdist, tmp_path / "out")


def test_a_fetched_converter_is_reused_without_pip(tmp_path: Path) -> None:
    script = tmp_path / LLAMA_CPP_PYTHON_VERSION / CONVERTER
    script.parent.mkdir(parents=True)
    script.write_text("# cached\n")
    assert ensure_converter(tmp_path) == script


def test_export_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no PEFT adapter"):
        export_adapter(tmp_path / "adapter", tmp_path, tmp_path / "a.gguf", converter=tmp_path)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(ExportError, match="no base model config"):
        export_adapter(tmp_path / "adapter", tmp_path, tmp_path / "a.gguf", converter=tmp_path)


def test_a_failing_converter_reports_its_last_line(tmp_path: Path) -> None:
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "config.json").write_text("{}")
    script = tmp_path / "fail.py"
    script.write_text(
        "import sys\nprint('noise', file=sys.stderr)\nsys.exit('Model Foo is not supported')\n"
    )
    with pytest.raises(ExportError, match="failed: Model Foo is not supported"):
        export_adapter(tmp_path / "adapter", tmp_path, tmp_path / "a.gguf", converter=script)
