"""The `edoc-gateway` command: package tools, the test PKI, the axis simulator and the daemon.

Exit codes: 0 ok, 1 invalid input (the package, spec or signature is bad), 2 usage error (bad
arguments, unreadable files, bad configuration).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or unreadable inputs: exit code 2."""


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _load_trust(args: argparse.Namespace) -> Any:
    if not getattr(args, "trust", None):
        if getattr(args, "crl", None):
            raise UsageError("--crl needs --trust")
        return None
    from edxml.errors import EdxmlError
    from edxml.trust import TrustStore

    trust = Path(args.trust)
    try:
        store = TrustStore.from_paths([trust], crl_files=[Path(c) for c in args.crl or ()])
    except EdxmlError as exc:  # edxml.trust.unreadable: a missing or unparsable file
        raise UsageError(f"cannot load trust store: {exc.reason}: {exc.message}"
                         + (f" ({exc.where})" if exc.where else "")) from exc
    except OSError as exc:
        raise UsageError(f"cannot load trust store: {exc.strerror or exc}") from exc
    if not store.roots:
        # Nothing could ever verify: say so rather than report every signer as untrusted.
        raise UsageError(f"cannot load trust store: no self-signed root certificate in {trust}")
    return store


def _signature_dict(verdict: Any) -> dict[str, Any] | None:
    if verdict is None:
        return None
    out = {"status": verdict.status, "reason": verdict.reason, "message": verdict.message,
           "signature_method": verdict.signature_method, "digest_method": verdict.digest_method}
    if verdict.signer is not None:
        s = verdict.signer
        out["signer"] = {"subject": s.subject, "issuer": s.issuer, "serial": s.serial_hex,
                         "not_before": s.not_before.isoformat(),
                         "not_after": s.not_after.isoformat(), "sha256": s.sha256_fingerprint}
    return out


def _read(path: Path, work: Path, trust: Any) -> tuple[Any, Any]:
    """Read a package and check its signature in the same pass."""
    from edxml.reader import read_package
    from edxml.signature import DocumentDigester, verify_signature

    from edxml.trust import TrustStore

    digester = DocumentDigester()
    try:
        result = read_package(path, work, digester=digester)
    except OSError as exc:  # missing, a directory, unreadable: not a verdict on a package
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    # Without a trust store a real signature is still checked, and reported as untrusted.
    verdict = verify_signature(result.signature, trust if trust is not None else TrustStore(()))
    return result, verdict


def cmd_inspect(args: argparse.Namespace) -> int:
    from edxml.errors import EdxmlError
    from edxml.jsonform import package_to_dict

    trust = _load_trust(args)
    with tempfile.TemporaryDirectory(prefix="edoc-inspect-") as work:
        try:
            result, verdict = _read(Path(args.file), Path(work), trust)
        except EdxmlError as exc:
            if args.json:
                _print_json({"ok": False, "error": exc.as_dict()})
            else:
                print(f"invalid package: {exc.reason}: {exc.message}"
                      + (f" (at {exc.where})" if exc.where else ""), file=sys.stderr)
            return EXIT_INVALID
        # A broken signature is a defect of the package; "untrusted" is one only when the
        # caller said what to trust. Placeholder and absent signatures are shown, not judged.
        signature_ok = verdict.status != "invalid" or (
            trust is None and verdict.reason == "edxml.signature.untrusted")
        report = {
            "ok": all(a.ok for a in result.attachments) and signature_ok,
            "kind": result.kind,
            "size": result.size,
            "sha256": result.sha256,
            "package": package_to_dict(result.package),
            "business_flow": (result.package.business_doc_type.name.lower()
                              if result.kind == "edoc" else None),
            "attachments": [{
                "content_id": a.attachment.content_id,
                "name": a.attachment.attachment_name,
                "declared_type": a.attachment.content_type,
                "detected_type": a.detected_type,
                "size": a.attachment.size,
                "sha256": a.attachment.sha256,
                "unwrapped_from_zip": a.unwrapped_from_zip,
                "error": a.error.as_dict() if a.error else None,
            } for a in result.attachments],
            "signature": _signature_dict(verdict),
            "warnings": [{"code": w.code, "message": w.message, "where": w.where}
                         for w in result.warnings],
        }
        if result.kind == "edoc":
            from gateway.pdfcheck import inspect_report

            sender = (report["package"]["message_header"].get("from") or {}).get("organ_id")
            report["attachment_signatures"] = inspect_report(result.attachments, args.trust,
                                                             args.crl, sender)
        for att in report["package"].get("attachments", []):
            att.pop("path", None)
    if args.json:
        _print_json(report)
    else:
        _print_inspect(report)
    return EXIT_OK if report["ok"] else EXIT_INVALID


def _print_inspect(report: dict[str, Any]) -> None:
    header = report["package"]["message_header"]
    print(f"{report['kind']} package, {report['size']} bytes, sha256 {report['sha256']}")
    print(f"  from:    {header['from'].get('organ_id')}  {header['from'].get('organ_name') or ''}")
    if report["kind"] == "edoc":
        for to in header.get("to", []):
            print(f"  to:      {to.get('organ_id')}  {to.get('organ_name') or ''}")
        code = header.get("code", {})
        print(f"  number:  {code.get('code_number')}/{code.get('code_notation')}"
              f"  dated {header.get('promulgation_info', {}).get('promulgation_date')}")
        print(f"  id:      {header.get('document_id')}")
        print(f"  subject: {header.get('subject')}")
        print(f"  flow:    {report['business_flow']}")
    else:
        rf = header.get("response_for", {})
        print(f"  status:  {header.get('status_code')}  {header.get('description') or ''}")
        print(f"  for:     {rf.get('document_id') or rf.get('code')} (sender {rf.get('organ_id')})")
    for att in report["attachments"]:
        state = "ok" if att["error"] is None else f"CORRUPT {att['error']['reason']}: " \
                                                  f"{att['error']['message']}"
        print(f"  attachment {att['content_id']}: {att['name']} "
              f"[{att['detected_type'] or att['declared_type']}] {att['size'] or '-'} bytes {state}")
    sig = report["signature"]
    if sig:
        who = f" by {sig['signer']['subject']}" if sig.get("signer") else ""
        if sig.get("reason"):
            why = f" ({sig['reason']}: {sig['message']})"
        else:
            why = f" ({sig['message']})" if sig["status"] in ("placeholder", "absent") else ""
        print(f"  signature: {sig['status']}{who}{why}")
    for w in report["warnings"]:
        print(f"  warning {w['code']}: {w['message']}" + (f" (at {w['where']})" if w['where'] else ""))
    from gateway.pdfcheck import print_summary

    print_summary(report.get("attachment_signatures"))


def cmd_validate(args: argparse.Namespace) -> int:
    from edxml.errors import EdxmlError

    with tempfile.TemporaryDirectory(prefix="edoc-validate-") as work:
        try:
            result, _ = _read(Path(args.file), Path(work), None)
        except EdxmlError as exc:
            print(f"invalid: {exc.reason}: {exc.message}"
                  + (f" (at {exc.where})" if exc.where else ""))
            return EXIT_INVALID
    problems = [f"attachment {a.attachment.content_id}: {a.error.reason}: {a.error.message}"
                for a in result.attachments if a.error]
    if args.xsd:
        from edxml.schema import validate_file

        try:
            problems += [f"xsd: {p}" for p in validate_file(Path(args.file))]
        except OSError as exc:  # the schema is not installed, or the file went away
            raise UsageError(f"cannot validate against the schema: {exc}") from exc
    for p in problems:
        print(f"invalid: {p}")
    for w in result.warnings:
        print(f"warning {w.code}: {w.message}" + (f" (at {w.where})" if w.where else ""))
    if problems:
        return EXIT_INVALID
    print(f"valid {result.kind} package")
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    import os

    from edxml.errors import EdxmlError
    from edxml.jsonform import package_from_dict
    from edxml.writer import write_package_file

    spec_path = Path(args.spec)
    if not args.key and (args.cert or args.password_env):
        raise UsageError("--cert and --password-env need --key")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: {out.parent} is not a directory")
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {spec_path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        print(f"invalid: edxml.spec.invalid: {spec_path} is not JSON: {exc}", file=sys.stderr)
        return EXIT_INVALID
    signer = _load_signer(args) if args.key else None
    try:
        pkg = package_from_dict(spec, base_dir=spec_path.parent)
        write_package_file(pkg, out, signer=signer)
    except EdxmlError as exc:
        print(f"invalid: {exc.reason}: {exc.message}" + (f" (at {exc.where})" if exc.where else ""),
              file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    # The writer renames a private temporary file into place; a package is not a secret.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out, 0o666 & ~umask)
    print(f"wrote {args.out}" + (" (signed)" if signer else ""))
    return EXIT_OK


def _load_signer(args: argparse.Namespace) -> Any:
    import os
    from datetime import datetime, timezone

    from edxml.errors import EdxmlError
    from edxml.signature import Signer

    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            raise UsageError(f"environment variable {args.password_env} is not set")
    pkcs12 = str(args.key).lower().endswith((".p12", ".pfx"))
    if not pkcs12 and not args.cert:
        raise UsageError("--cert is required with a PEM key")
    try:
        if pkcs12:
            signer = Signer.from_pkcs12(Path(args.key), password)
        else:
            signer = Signer.from_pem(Path(args.key), Path(args.cert), password)
    except EdxmlError as exc:  # unreadable key/certificate, key not matching, not RSA
        raise UsageError(f"cannot load signing key: {exc.reason}: {exc.message}"
                         + (f" ({exc.where})" if exc.where else "")) from exc
    except OSError as exc:
        raise UsageError(f"cannot load signing key: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UsageError(f"cannot load signing key or certificate: {exc}") from exc
    # An expired (or not yet valid) signing certificate is a configuration problem, the same
    # for build and sign: refuse before any output is written.
    cert = signer.certificate
    now = datetime.now(timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise UsageError(f"edxml.signature.signer_not_valid: the certificate of "
                         f"{cert.subject.rfc4514_string()} is valid from "
                         f"{cert.not_valid_before_utc:%Y-%m-%d} to "
                         f"{cert.not_valid_after_utc:%Y-%m-%d}, not now")
    return signer


def cmd_sign(args: argparse.Namespace) -> int:
    import os

    from edxml.errors import EdxmlError
    from edxml.signature import sign_file

    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        raise UsageError(f"cannot read {src}: not a file")
    if not dst.parent.is_dir():
        raise UsageError(f"cannot write {dst}: {dst.parent} is not a directory")
    signer = _load_signer(args)
    # Written beside the output and renamed: never a half-written package, and signing a file
    # in place (input == output) does not truncate what is being read.
    fd, tmp_name = tempfile.mkstemp(prefix=".edoc-sign-", dir=dst.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            sign_file(src, f, signer)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dst)
    except EdxmlError as exc:
        print(f"invalid: {exc.reason}: {exc.message}" + (f" (at {exc.where})" if exc.where else ""),
              file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        raise UsageError(f"cannot sign {src} into {dst}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    print(f"signed {args.output}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from edxml.errors import EdxmlError

    trust = _load_trust(args)
    with tempfile.TemporaryDirectory(prefix="edoc-verify-") as work:
        try:
            _, verdict = _read(Path(args.file), Path(work), trust)
        except EdxmlError as exc:
            if args.json:
                _print_json({"status": "unreadable", "reason": exc.reason, "message": exc.message,
                             "where": exc.where})
            else:
                print(f"invalid package: {exc.reason}: {exc.message}"
                      + (f" (at {exc.where})" if exc.where else ""), file=sys.stderr)
            return EXIT_INVALID
    if args.json:
        _print_json(_signature_dict(verdict))
    else:
        who = f"; signer: {verdict.signer.subject}; issuer: {verdict.signer.issuer}" \
            if verdict.signer else ""
        if verdict.reason:
            why = f" {verdict.reason}: {verdict.message}"
        else:
            why = f": {verdict.message}" if verdict.status != "valid" else ""
        print(f"{verdict.status}{why}{who}")
    return EXIT_OK if verdict.status == "valid" else EXIT_INVALID


def cmd_pki_init(args: argparse.Namespace) -> int:
    from edxml.errors import EdxmlError
    from edxml.pki import init_test_pki
    from edxml.values import OrganId

    agencies = []
    for item in args.agency or ["000.00.00.H55=UBND tỉnh Thái Nguyên",
                                "000.00.00.H41=UBND tỉnh Nghệ An"]:
        organ_id, _, name = item.partition("=")
        organ_id, name = organ_id.strip(), name.strip()
        try:
            OrganId.parse(organ_id, strict=True)
        except EdxmlError as exc:
            raise UsageError(f"--agency {item!r}: {exc.message}") from exc
        if any(organ_id == known for known, _ in agencies):
            raise UsageError(f"--agency {organ_id} is given twice")
        agencies.append((organ_id, name or organ_id))
    try:
        pki = init_test_pki(Path(args.dir), agencies=agencies)
    except OSError as exc:
        raise UsageError(f"cannot write the test PKI to {args.dir}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # an agency name longer than a certificate name may be
        raise UsageError(f"--agency: {exc}") from exc
    print(f"test PKI written to {args.dir} (for trials only: these keys are not secret)")
    for line in getattr(pki, "describe", lambda: [])():
        print(f"  {line}")
    return EXIT_OK


def _add_signer_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--key", required=required, help="private key (PEM) or PKCS#12 (.p12/.pfx)")
    p.add_argument("--cert", help="certificate (PEM), with a PEM key")
    p.add_argument("--password-env", metavar="VAR",
                   help="environment variable holding the key's password")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edoc-gateway",
        description="Gateway between agency document software (Kafka) and the national "
                    "document axis (edXML, QCVN 102:2016/BTTTT).")
    parser.add_argument("--version", action="version", version=_version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("inspect", help="show a package: header, flow, attachments, signature")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--trust", help="directory of trusted CA certificates")
    p.add_argument("--crl", action="append", help="CRL file (repeatable)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("validate", help="check a package is well-formed and complete")
    p.add_argument("file")
    p.add_argument("--xsd", action="store_true", help="also validate against schemas/edxml.xsd")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("build", help="build a package from a JSON document description")
    p.add_argument("spec")
    p.add_argument("out")
    _add_signer_args(p, required=False)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("sign", help="sign a package (XMLDSig, RSA-SHA256)")
    p.add_argument("input")
    p.add_argument("output")
    _add_signer_args(p, required=True)
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("verify", help="verify a package's signature against a trust store")
    p.add_argument("file")
    p.add_argument("--trust", required=True, help="directory of trusted CA certificates")
    p.add_argument("--crl", action="append", help="CRL file (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("pki", help="test PKI for trying things out")
    pki_sub = p.add_subparsers(dest="pki_command", metavar="PKI_COMMAND")
    pki_sub.required = True
    q = pki_sub.add_parser("init", help="create a test CA hierarchy and agency certificates")
    q.add_argument("dir")
    q.add_argument("--agency", action="append", metavar="ORGANID=NAME",
                   help="agency to issue a certificate for (repeatable)")
    q.set_defaults(func=cmd_pki_init)

    for register in _EXTENSIONS:
        register(sub)
    return parser


def _register_axis_sim(sub: Any) -> None:
    from connectors.axis.simulator import cli as sim_cli

    p = sub.add_parser("axis-sim", help="run the axis SIMULATOR (not the real axis) for trials")
    sim_cli.add_arguments(p)
    p.set_defaults(func=sim_cli.run)


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from gateway.config import ConfigError, load_config
    from gateway.logs import configure_logging

    try:
        config = load_config(Path(args.config), os.environ)
    except ConfigError as exc:
        raise UsageError(f"{exc.reason}: {exc.message}") from exc
    configure_logging(args.log_format or config.log.format, config.log.level)
    if args.check:
        from gateway.check import check

        return asyncio.run(check(config))
    from gateway.daemon import run_daemon

    return asyncio.run(run_daemon(config))


def _register_run(sub: Any) -> None:
    p = sub.add_parser("run", help="run the gateway daemon")
    p.add_argument("--config", required=True, help="gateway.toml")
    p.add_argument("--check", action="store_true",
                   help="validate config, load keys and certificates, reach Kafka and the axis, exit")
    p.add_argument("--log-format", choices=("auto", "json", "console"),
                   help="override [log] format")
    p.set_defaults(func=cmd_run)


def _register_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="quickstart: local Kafka, the axis simulator, two agencies, "
                                    "one document and its receipts")
    from gateway import demo

    demo.add_arguments(p)
    p.set_defaults(func=demo.main)


def _register_audit_dlq(sub: Any) -> None:
    from gateway import audit, dlq

    audit.register_cli(sub)
    dlq.register_cli(sub)


def _register_conformance(sub: Any) -> None:
    from gateway import conformance

    conformance.register_cli(sub)


def _register_ops(sub: Any) -> None:
    from gateway.ops import trace

    trace.register_cli(sub)


def _version_text() -> str:
    from gateway.ops.version import gateway_version

    return f"edoc-gateway {gateway_version()}"


def _register_acl(sub: Any) -> None:
    from gateway import acl

    acl.register_cli(sub)


_EXTENSIONS: list[Callable[[Any], None]] = [_register_run, _register_demo, _register_audit_dlq,
                                            _register_conformance, _register_axis_sim,
                                            _register_ops, _register_acl]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is not cmd_run:
        # Logs go to stderr so that --json output on stdout stays clean.
        from gateway.logs import configure_logging

        configure_logging("auto", "warning")
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"edoc-gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
