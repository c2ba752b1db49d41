"""The version of the running gateway: one answer for `--version`, the console, metrics and
the audit chain."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def gateway_version() -> str:
    """The installed distribution's version (`0.1.0`), or `unknown` when run from a bare tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edoc-gateway")
    except PackageNotFoundError:
        return "unknown"
