#!/usr/bin/env python3
"""Point every alert's `runbook_url` at where your runbook is published.

    python3 deploy/prometheus/runbook_base.py https://wiki.tinh.gov.vn/edoc/runbook.html
    python3 deploy/prometheus/runbook_base.py --check     # exit 1 if a URL is not absolute

Alertmanager, Grafana and paging tools open `runbook_url` from wherever they run, so a path
relative to this repository leads nowhere: each URL is `<base>#<alert name in lower case>`,
one section of docs/runbook.md per alert. The rules ship with a placeholder base (`.invalid`
never resolves, so a forgotten step shows at once); publish docs/runbook.md on your own site
and run this with its address. Rewrites alerts.yml and alerts.test.yml, then the Kubernetes
copy (deploy/k8s/sync_rules.py). Standard library only.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
FILES = (HERE / "alerts.yml", HERE / "alerts.test.yml")
DEFAULT_BASE = "https://runbook.edoc-gateway.invalid/runbook.md"
URL = re.compile(r'^(?P<lead>\s*runbook_url: ")(?P<base>[^"#]*)#(?P<anchor>[a-z0-9-]+)"\s*$', re.M)


def bases(text: str) -> set[str]:
    return {m.group("base") for m in URL.finditer(text)}


def absolute(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", nargs="?", help="absolute URL of the published runbook page")
    parser.add_argument("--check", action="store_true", help="only check the URLs")
    args = parser.parse_args(argv)
    if args.check or not args.base:
        found = set().union(*(bases(f.read_text(encoding="utf-8")) for f in FILES))
        bad = sorted(b for b in found if not absolute(b))
        print(f"runbook bases: {', '.join(sorted(found))}")
        return 1 if bad or len(found) != 1 else 0
    if not absolute(args.base) or "#" in args.base or '"' in args.base:
        print("runbook_base.py: the base must be an absolute http(s) URL without '#'",
              file=sys.stderr)
        return 2
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        path.write_text(URL.sub(lambda m: f'{m.group("lead")}{args.base}#{m.group("anchor")}"',
                                text), encoding="utf-8")
    subprocess.run([sys.executable, str(HERE.parent / "k8s" / "sync_rules.py")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
