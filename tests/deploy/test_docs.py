"""Operator and integration documents: generated parts up to date, links and anchors that
resolve, the commands they show exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from tests.deploy.conftest import DEPLOY, REPO

DOCS = REPO / "docs"


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_asyncapi_page_is_rendered_from_the_current_sources():
    renderer = load(DEPLOY / "tools" / "render_asyncapi.py")
    assert (DOCS / "asyncapi.md").read_text(encoding="utf-8") == renderer.render(), \
        "run python3 deploy/tools/render_asyncapi.py"


def test_asyncapi_page_lists_every_topic_and_every_message_field_table():
    renderer = load(DEPLOY / "tools" / "render_asyncapi.py")
    api = renderer.load_asyncapi()
    page = (DOCS / "asyncapi.md").read_text(encoding="utf-8")
    for channel in api["channels"].values():
        assert f"`{channel['address']}`" in page
    for message in api["components"]["messages"].values():
        assert f"### {message['name']} " in page
    # A required field deep in a schema is in its table.
    assert "| `message_header.code.code_number` | string | yes |" in page
