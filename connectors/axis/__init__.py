"""The national document axis connector: the AxisTransport interface and its HTTP client.

The simulator used by tests lives in `connectors.axis.simulator` and is not imported here.
"""

from connectors.axis.client import (Agency, AgencyQD20, AgencyRegistration, AxisClient,
                                    AxisClientConfig, AxisTransport, DeliveryStatus, FetchResult,
                                    MessageType, ReceivedItem, SendResult, SentItem, sha256_file)
from connectors.axis.errors import REASONS, AxisError

__all__ = [
    "REASONS", "Agency", "AgencyQD20", "AgencyRegistration", "AxisClient", "AxisClientConfig",
    "AxisError", "AxisTransport", "DeliveryStatus", "FetchResult", "MessageType", "ReceivedItem",
    "SendResult", "SentItem", "sha256_file",
]
