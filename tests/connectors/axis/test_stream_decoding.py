"""The getEdoc answer decoder: base64 inside JSON, decoded while it streams, any chunking."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.axis.client import _Base64Sink, _JsonStreamReader, _PartFile


def _decode(answer: bytes, cuts: list[int], dest: Path):
    with _PartFile(dest) as out:
        sink = _Base64Sink(out)
        reader = _JsonStreamReader("data", sink.write)
        last = 0
        for cut in sorted(set(c % (len(answer) + 1) for c in cuts)) + [len(answer)]:
            reader.feed(answer[last:cut])
            last = cut
        fields = reader.finish()
        sink.finish()
        out.commit()
    return fields, sink


@settings(max_examples=100, deadline=None)
@given(payload=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 5000), max_size=12),
       escape_slashes=st.booleans(), wrap=st.sampled_from([0, 76]), data_first=st.booleans())
def test_any_chunking_and_json_escaping_decodes_to_the_same_bytes(
        tmp_path_factory, payload, cuts, escape_slashes, wrap, data_first):
    text = base64.b64encode(payload).decode()
    if wrap:
        text = "\r\n".join(text[i:i + wrap] for i in range(0, len(text), wrap))
    data = json.dumps(text)
    if escape_slashes:                     # some Java encoders write "\/"
        data = data.replace("/", "\\/")
    members = ['"status":"OK"', '"ErrorCode":"0"', '"ErrorDesc":"Th\\u00e0nh c\\u00f4ng"']
    members.insert(0 if data_first else 3, f'"data":{data}')
    answer = ("{ " + " , ".join(members) + " }").encode()
    dest = tmp_path_factory.getbasetemp() / "decoded.edxml"

    fields, sink = _decode(answer, cuts, dest)

    assert dest.read_bytes() == payload
    assert sink.size == len(payload)
    assert sink.hexdigest() == hashlib.sha256(payload).hexdigest()
    assert fields == {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Thành công"}


@pytest.mark.parametrize("answer", [
    b'{"status":"OK","data":"QUJD!"}',          # not base64
    b'{"status":"OK","data":"QUJDRA=="',        # JSON cut short
    b'{"status":"OK","data":"QUJDR"}',          # base64 cut short
    b'{"status":"OK","data":"QQ==QUJD"}',       # data after padding
    b'{"status":"OK" "data":"QUJD"}',           # missing comma
])
def test_broken_answers_raise_and_leave_no_file(tmp_path, answer):
    dest = tmp_path / "out.edxml"
    with pytest.raises(ValueError):
        _decode(answer, [7, 19], dest)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []
