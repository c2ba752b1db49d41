"""Under the default inbound policy, a receipt built by the reference library (no signature
element at all) reaches the agency with its verdict; real Kafka, the simulator, a gateway
process."""

from __future__ import annotations

import pytest

from connectors.axis import AxisClient, AxisClientConfig
from gateway.config import SECTIONS
from gateway.lab import NGHE_AN, THAI_NGUYEN, AgencyClient, Lab

from tests.edxml import reference_built

pytestmark = pytest.mark.kafka

DEFAULT_POLICY = SECTIONS["inbound"]["signature_policy"].default


@pytest.fixture(scope="module")
def lab(kafka_bootstrap, tmp_path_factory):
    # The lab's gateways require valid signatures; this one runs with the shipped default.
    lab = Lab(tmp_path_factory.mktemp("lab"), kafka_bootstrap, gateway_overrides={
        THAI_NGUYEN.code: {"inbound": {"signature_policy": DEFAULT_POLICY}}})
    lab.start()
    lab.start_gateway(THAI_NGUYEN)
    yield lab
    lab.stop()
    for gw in lab.gateways:
        print(f"--- {gw.log}\n" + gw.log.read_text(errors="replace")[-4000:])


async def test_unsigned_receipt_from_the_reference_library_flows_with_its_verdict(lab, tmp_path):
    thai_nguyen = AgencyClient(lab, THAI_NGUYEN, "000.00.00.H55")
    package = tmp_path / "status.edxml"
    package.write_bytes(reference_built.status_package("06", "Hoàn thành"))
    config = AxisClientConfig(endpoint=lab.simulator.url, systemid=NGHE_AN.systemid,
                              secret=lab.secrets_[NGHE_AN.systemid])
    async with AxisClient(config) as axis:
        await axis.send_edoc(package, from_organ="000.00.00.H41", messagetype="status",
                             to=["000.00.00.H55"])
    (receipt,) = await thai_nguyen.wait_for(
        "inbound_receipts", lambda e: e.data["message_header"]["response_for"]["document_id"]
        == reference_built.DOCUMENT_ID)
    assert receipt.data["message_header"]["status_code"] == "06"
    assert receipt.data["signature"]["status"] == "absent"
