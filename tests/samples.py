"""Where the real sample packages live (copied from the public SDKVXP example; see its README)."""

from pathlib import Path

SAMPLES_DIR = Path(__file__).parent / "data" / "edxml-samples"


def sample(name: str) -> Path:
    return SAMPLES_DIR / name
