"""edXML (QCVN 102:2016/BTTTT) packages: model, writer, reader and signatures.

A pure library: bytes, streams and file paths in; models, verdicts and written streams out.
It never touches the network, Kafka or the gateway's configuration.
"""
