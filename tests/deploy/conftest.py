"""Shared helpers of the deployment checks: paths, YAML, and the tools found on this machine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def tool(name: str, install_hint: str) -> str:
    """The path of a command-line tool, or skip the test saying how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({install_hint})")
    return path


def run(argv: list[str], cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def yaml_module() -> Any:
    return pytest.importorskip("yaml", reason="PyYAML is needed to read the YAML files "
                                              "(pip install pyyaml)")


def load_yaml(path: Path) -> Any:
    return yaml_module().safe_load(path.read_text(encoding="utf-8"))


def load_yaml_documents(text: str) -> list[Any]:
    return [doc for doc in yaml_module().safe_load_all(text) if doc is not None]
