"""Machine-readable contracts: the edXML XSD, event JSON Schemas and the AsyncAPI document."""
