"""The AsyncAPI document checked by the official parser (@asyncapi/parser, run with node),
payload schemas included, and proof that a broken payload schema is caught.

The parser is installed with npm into .cache/asyncapi/ the first time (pinned major version;
later runs reuse it). Without node or npm, or without the registry, the tests are skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from tests.deploy.conftest import DEPLOY, REPO

SCHEMAS = REPO / "schemas"
CHECK = DEPLOY / "tools" / "check_asyncapi.cjs"
CACHE = REPO / ".cache" / "asyncapi"
PARSER = "@asyncapi/parser@3"

#: Keywords of draft 2020-12 that draft-07 does not know: the payload schemas avoid them, so
#: they mean the same under both (the files say 2020-12 for our validator; the AsyncAPI
#: document declares draft-07, the newest JSON Schema its parser validates).
NOT_IN_DRAFT_07 = {"prefixItems", "unevaluatedProperties", "unevaluatedItems",
                   "dependentRequired", "dependentSchemas", "$anchor", "$dynamicRef",
                   "$dynamicAnchor", "minContains", "maxContains", "$vocabulary"}


@pytest.fixture(scope="module")
def parser_modules() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the AsyncAPI parser")
    modules = CACHE / "node_modules"
    if not (modules / "@asyncapi" / "parser").is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        if not (CACHE / "package.json").exists():
            (CACHE / "package.json").write_text('{"private": true}\n', encoding="utf-8")
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent", PARSER],
                              cwd=CACHE, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"npm could not install {PARSER}: {done.stderr[-500:]}")
    return modules


def parse(document: Path, modules: Path) -> tuple[int, list[str]]:
    done = subprocess.run(["node", str(CHECK), str(document)], capture_output=True, text=True,
                          timeout=300, env={"NODE_PATH": str(modules), "PATH": "/usr/bin:/bin"})
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, lines


def test_the_parser_reports_no_error(parser_modules):
    code, lines = parse(SCHEMAS / "asyncapi.yaml", parser_modules)
    errors = [line for line in lines if line.startswith(("error", "warning"))]
    assert code == 0 and errors == [], "\n".join(lines)


def test_a_deliberately_broken_payload_schema_is_rejected(parser_modules, tmp_path):
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    target = copy / "events" / "vn.gov.edoc.receipt.send.v1.schema.json"
    schema = json.loads(target.read_text(encoding="utf-8"))
    schema["required"] = "message_header"  # must be an array
    target.write_text(json.dumps(schema), encoding="utf-8")
    code, lines = parse(copy / "asyncapi.yaml", parser_modules)
    assert code == 1, "\n".join(lines)
    assert any("receiptSend" in line and line.startswith("error") for line in lines), lines


def test_payloads_are_declared_in_a_format_the_parser_validates():
    doc = json.loads("\n".join(line for line in (SCHEMAS / "asyncapi.yaml").read_text(
        encoding="utf-8").splitlines() if not line.startswith("#")))
    formats = {m["payload"]["schemaFormat"] for m in doc["components"]["messages"].values()}
    assert formats == {"application/schema+json;version=draft-07"}


@pytest.mark.parametrize("path", sorted((SCHEMAS / "events").glob("*.schema.json")),
                         ids=lambda p: p.name)
def test_payload_schemas_mean_the_same_under_draft_07_and_2020_12(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    used: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            used.update(node)
            for key, value in node.items():
                if key not in ("properties", "const", "enum", "examples", "default"):
                    walk(value)
                elif key == "properties" and isinstance(value, dict):
                    for sub in value.values():
                        walk(sub)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    assert used & NOT_IN_DRAFT_07 == set()
    Draft202012Validator.check_schema(schema)
    Draft7Validator.check_schema(schema)


def _asyncapi() -> dict:
    return json.loads("\n".join(line for line in (SCHEMAS / "asyncapi.yaml").read_text(
        encoding="utf-8").splitlines() if not line.startswith("#")))


def test_every_message_has_an_example_that_matches_its_schemas():
    from gateway.events import validate_data

    doc = _asyncapi()
    header_schema = doc["components"]["schemas"]["cloudEventHeaders"]
    for key, message in doc["components"]["messages"].items():
        (example,) = message["examples"]
        validate_data(message["name"], example["payload"])  # raises on a mismatch
        Draft202012Validator(header_schema).validate(example["headers"])
        assert example["headers"]["ce_type"] == message["name"], key


def test_examples_are_the_ones_of_the_events_guide():
    import importlib.util

    spec = importlib.util.spec_from_file_location("asyncapi_examples",
                                                  DEPLOY / "tools" / "asyncapi_examples.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert (SCHEMAS / "asyncapi.yaml").read_text(encoding="utf-8") == tool.render(), \
        "run python3 deploy/tools/asyncapi_examples.py"
