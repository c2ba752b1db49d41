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


OPERATOR_DOCS = ("operations.md", "operations.vi.md", "runbook.md", "integration.md")


def anchor(heading: str) -> str:
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_links_between_the_operator_documents_resolve():
    anchors = {}
    for name in OPERATOR_DOCS + ("configuration.md", "events.md", "asyncapi.md"):
        text = (DOCS / name).read_text(encoding="utf-8")
        anchors[name] = {anchor(line.lstrip("#")) for line in text.splitlines()
                         if line.startswith("#")}
    for name in OPERATOR_DOCS:
        text = (DOCS / name).read_text(encoding="utf-8")
        for target, fragment in re.findall(r"\]\(([\w.]*)#([^)\s]+)\)", text):
            document = target or name
            assert fragment in anchors[document], f"{name}: link to {document}#{fragment}"
        for target in re.findall(r"\]\(([\w.]+\.md)\)", text):
            assert (DOCS / target).exists(), f"{name}: link to {target}"


def test_files_the_documents_name_exist():
    for name in OPERATOR_DOCS:
        text = (DOCS / name).read_text(encoding="utf-8")
        # (`kubectl exec deploy/edoc-gateway` names a Kubernetes Deployment, not a file.)
        for path in set(re.findall(r"(?<![\w/])(?<!exec )((?:deploy|examples|schemas)/[\w./-]*\w)",
                                   text)):
            assert (REPO / path).exists(), f"{name} names {path}"


def test_commands_in_the_documents_are_commands_of_the_cli():
    from gateway.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    known = set(subparsers.choices) | {"conformance"}  # conformance: gateway/conformance.py
    for name in OPERATOR_DOCS:
        text = (DOCS / name).read_text(encoding="utf-8")
        blocks = re.findall(r"```\w*\n(.*?)```", text, re.S)
        prose = re.sub(r"```\w*\n.*?```", "", text, flags=re.S)
        code = "\n".join(blocks + re.findall(r"`([^`\n]+)`", prose))
        code = re.sub(r"(^|\s)#.*", "", code)  # shell comments
        # A command, not the user, group or namespace of that name (-u/-g/-o/-n edoc-gateway).
        commands = re.findall(r"(?<![-\w.])(?<!-[gunoO] )edoc-gateway (\w[\w-]*)", code)
        assert commands
        for command in commands:
            if command.startswith("edoc-gateway"):  # systemctl … edoc-gateway edoc-gateway-….timer
                continue
            assert command in known, f"{name}: edoc-gateway {command}"


def test_conformance_example_in_the_integration_guide_passes():
    from gateway import conformance

    text = (DOCS / "integration.md").read_text(encoding="utf-8")
    example = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    result = conformance.check_line(example.encode(), line=1, agencies=["000.00.00.H55"])
    assert result.ok, result.error
    assert result.warnings == ()


def test_vietnamese_guide_covers_every_operator_task_in_vietnamese():
    text = (DOCS / "operations.vi.md").read_text(encoding="utf-8")
    headings = [line.lower() for line in text.splitlines() if line.startswith("## ")]
    for topic in ("cài đặt", "cấu hình", "tiếp nhận một cơ quan mới", "chứng thư số",
                  "dashboard", "xử lý cảnh báo", "phát lại thư chết", "nhật ký kiểm toán",
                  "sao lưu", "khôi phục", "nâng cấp"):
        assert any(topic in h for h in headings), topic
    # Written in Vietnamese, not English with a few words: most prose lines carry diacritics.
    without_code = re.sub(r"```\w*\n.*?```", "", text, flags=re.S)
    prose = [line for line in without_code.splitlines()
             if line.strip() and not line.startswith(("|", "#"))]
    vietnamese = [line for line in prose if re.search("[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", line.lower())]
    assert len(vietnamese) > 0.9 * len(prose), len(vietnamese) / len(prose)
    # The same sections as the English guide.
    english = (DOCS / "operations.md").read_text(encoding="utf-8")
    assert len(headings) == len([l for l in english.splitlines() if l.startswith("## ")])
