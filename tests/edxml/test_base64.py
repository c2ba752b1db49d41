"""The reader's base64 decoding decides exactly as binascii's strict mode did.

`edxml.reader._Base64Sink` hands the decoder chunks whose length is a multiple of four, without
whitespace, after refusing padding anywhere but at the end. The old decoder was
`binascii.a2b_base64(chunk, strict_mode=True)`; the new one is pybase64. Here both see the same
chunks (generated hostile ones included) and must accept the same ones with the same bytes.
"""

import base64
import binascii

from hypothesis import given, settings
from hypothesis import strategies as st

from edxml.reader import _Base64Sink

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _old(chunk: bytes) -> bytes | None:
    """The decoding as it was: the padding check, then binascii in strict mode."""
    if chunk.find(b"=", 0, len(chunk) - 2) >= 0:
        return None
    try:
        return binascii.a2b_base64(chunk, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def _new(chunk: bytes, tmp_path) -> bytes | None:
    sink = _Base64Sink(tmp_path / "out.bin", 1 << 20)
    sink._decode(chunk)
    if sink.error is not None:
        assert sink.error.reason == "edxml.attachment.base64"
        assert sink.error.message == "content is not valid base64"
        return None
    sink.close()
    return (tmp_path / "out.bin").read_bytes()


_CHARS = st.sampled_from(_ALPHABET + "=" * 8 + "-_*.\x00\x7f?~ é")
_CHUNKS = st.integers(1, 12).flatmap(lambda n: st.text(_CHARS, min_size=4 * n, max_size=4 * n)).map(
    lambda t: t.encode("ascii", "replace")).filter(lambda b: len(b) % 4 == 0)


@settings(max_examples=1500, deadline=None)
@given(_CHUNKS)
def test_generated_chunks_decode_as_binascii_strict_decoded_them(tmp_path_factory, chunk):
    tmp = tmp_path_factory.mktemp("b64")
    assert _new(chunk, tmp) == _old(chunk)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 3), st.sampled_from(list(_ALPHABET + "=*")))
def test_real_base64_and_its_one_character_damage_decode_alike(tmp_path_factory, data, at, char):
    tmp = tmp_path_factory.mktemp("b64")
    encoded = base64.b64encode(data)
    if not encoded:
        return
    assert _new(encoded, tmp) == _old(encoded) == data
    pos = len(encoded) - 1 - at if len(encoded) > at else 0
    damaged = encoded[:pos] + char.encode() + encoded[pos + 1:]
    assert _new(damaged, tmp_path_factory.mktemp("b64")) == _old(damaged)


def test_padding_then_data_and_leading_padding_are_refused(tmp_path):
    for chunk in (b"AB=C", b"====", b"A===", b"=ABC", b"ABC=ABCD", b"AB==AB=="):
        assert _old(chunk) is None
        assert _new(chunk, tmp_path) is None
