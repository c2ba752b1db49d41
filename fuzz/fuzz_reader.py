"""Fuzz the package reader: any exception other than EdxmlError is a crash.

    PYTHONPATH=. python fuzz/fuzz_reader.py -max_total_time=300 fuzz/corpus-reader
(seed the corpus directory with tests/data/hostile/*.edxml; see fuzz/README.md)
"""

import shutil
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    from edxml.errors import EdxmlError
    from edxml.reader import ReadLimits, read_package_bytes

_OUT = tempfile.mkdtemp(prefix="fuzz-reader-")
_LIMITS = ReadLimits(max_attachment_bytes=1 << 20, max_package_bytes=1 << 22)


def test_one_input(data: bytes) -> None:
    try:
        read_package_bytes(data, _OUT, limits=_LIMITS)
    except EdxmlError:
        pass
    finally:
        shutil.rmtree(_OUT, ignore_errors=True)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
