"""Fuzz event decoding and checking: CloudEvent.from_record + gateway.events.parse_incoming.

Input layout: the first byte picks the event type and the mode (binary or structured); the rest
is the record value. Any exception other than GatewayError (EnvelopeError, EventError, ...) is a
crash.

    PYTHONPATH=. python fuzz/fuzz_events.py -max_total_time=300 fuzz/corpus-events
"""

import sys

import atheris

with atheris.instrument_imports():
    from connectors.cloudevents import CloudEvent, KafkaRecord
    from edxml.errors import GatewayError
    from gateway import events

_TYPES = (events.DOCUMENT_SEND, events.RECEIPT_SEND, "x")
_AGENCIES = frozenset({"000.00.00.H55", "000.00.02.H55"})


def record_for(data: bytes) -> KafkaRecord:
    if not data:
        return KafkaRecord(None, b"", ())
    selector, value = data[0], data[1:]
    if selector & 0x80:
        return KafkaRecord(b"k", value, (("content-type", b"application/cloudevents+json"),))
    headers = (("ce_specversion", b"1.0"), ("ce_id", b"fuzz"), ("ce_source", b"urn:qlvb:fuzz"),
               ("ce_type", _TYPES[selector % 3].encode()), ("content-type", b"application/json"))
    if selector & 0x40:
        headers += (("ce_agency", b"000.00.00.H55"),)
    return KafkaRecord(b"k", value, headers)


def test_one_input(data: bytes) -> None:
    try:
        event = CloudEvent.from_record(record_for(data))
        events.parse_incoming(event, agencies=_AGENCIES, known_recipient=lambda r: True)
    except GatewayError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
