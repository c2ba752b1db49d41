"""Make and sign small PDFs, for the tests, the demo and ``pki``-style lab work.

Nothing here reads an untrusted PDF: it writes a minimal one-page PDF by hand and signs it with
pyHanko (an incremental update holding a CMS signature, the form every PDF signing tool uses).
:mod:`edxml.pdfsig` is the reading side.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def minimal_pdf(text: str = "Quyet dinh", *, padding: int = 0) -> bytes:
    """A valid one-page PDF 1.7 showing ``text`` (ASCII), with a correct xref table.

    ``padding`` adds an uncompressed stream of that many zero bytes (a stand-in for a scanned
    image) so size limits can be exercised without a real scan.
    """
    safe = "".join(c if 32 <= ord(c) < 127 and c not in "()\\" else "?" for c in text)
    content = f"BT /F1 18 Tf 72 720 Td ({safe}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    if padding:
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n<< /Length %d >>\nstream\n" % (len(objects) + 1, padding))
        chunk = b"\0" * (1 << 20)
        left = padding
        while left:
            n = min(left, len(chunk))
            out.write(chunk[:n])
            left -= n
        out.write(b"\nendstream\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, xref))
    return out.getvalue()


def _signer(key: rsa.RSAPrivateKey, certificate: x509.Certificate, chain: Sequence[x509.Certificate]):  # type: ignore[no-untyped-def]
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    def cert(c: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))

    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return SimpleSigner(signing_cert=cert(certificate), signing_key=asn1_keys.PrivateKeyInfo.load(der_key),
                        cert_registry=SimpleCertificateStore.from_certs([cert(c) for c in chain]))


def sign_pdf(data: bytes | io.BufferedIOBase, key: rsa.RSAPrivateKey, certificate: x509.Certificate,
             chain: Sequence[x509.Certificate] = (), *, field_name: str | None = None,
             reason: str | None = None, timestamper: Any = None,
             output: io.BufferedIOBase | None = None) -> bytes | None:
    """Add one signature (a new signature field) to a PDF given as bytes or a seekable stream.

    ``timestamper`` (a pyHanko ``TimeStamper``) adds an RFC 3161 timestamp token to the signature.
    Returns the signed PDF as bytes, or writes it to ``output`` (for big files) and returns None.
    """
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    writer = IncrementalPdfFileWriter(stream, strict=False)
    existing = len(writer.prev.embedded_signatures) if hasattr(writer, "prev") else 0
    meta = signers.PdfSignatureMetadata(field_name=field_name or f"Signature{existing + 1}",
                                        reason=reason, md_algorithm="sha256")
    pdf_signer = signers.PdfSigner(meta, signer=_signer(key, certificate, chain), timestamper=timestamper)
    result = pdf_signer.sign_pdf(writer, output=output)
    if output is not None:
        return None
    return result.getvalue()


def append_update(data: bytes, body: bytes = b"BT /F1 18 Tf 72 600 Td (changed) Tj ET") -> bytes:
    """Append an incremental update that replaces the first page's content stream: a change
    after signing of the kind no signature policy allows."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
    page_ref = writer.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    stream = generic.StreamObject(stream_data=body)
    page["/Contents"] = writer.add_object(stream)
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
