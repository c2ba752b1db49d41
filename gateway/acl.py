"""Kafka ACLs that let each agency's software use its own topics and nothing else.

The sending agency of an event is the agency of the outbound topic it was published to
(`gateway.outbound.check_topic_sender`); that is worth something only if the broker lets an
agency's principal write its own outbound topics and no other. `plan(config)` derives, from the
configuration alone, the ACL bindings that say so:

    principal of agency X (or a [[grants]] principal, for each agency it is granted)
        WRITE  its outbound topics        edoc.outbound.X.   (prefixed: documents + receipts)
        READ   its inbound topics         edoc.inbound.X.    (prefixed: documents + receipts)
        READ   its delivery topic         edoc.delivery.X    (literal)
        READ   its consumer groups        <user name>.       (prefixed)

Nothing else: no agency principal may write the gateway's own topics (ledger, audit, dead
letters, poller lease) or another agency's; with `allow.everyone.if.no.acl.found=false` whatever
is not allowed is refused. The gateway's own principal is a super user of the cluster.

`findings(config, acls)` is the other direction, for `run --check`: what a broker's ACLs (or the
lack of an authorizer) allow that this model forbids. `commands(...)` renders the plan as the
`kafka-configs.sh` / `kafka-acls.sh` lines an operator runs; `edoc-gateway acl plan|apply|check`
is the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from connectors.kafka import AclEntry
from gateway.config import GatewayConfig

WRITE_OPERATIONS = frozenset({"write", "all"})

#: why each kind of binding exists, printed above it by `acl plan`.
WHY = {
    "outbound": "may publish documents and receipts to send, in the name of {agency} only",
    "inbound": "may read documents and receipts that arrived for {agency}",
    "delivery": "may read the delivery outcomes of {agency}'s own events",
    "group": "may commit offsets in consumer groups whose id starts with {name}",
}


def user_name(principal: str) -> str:
    return principal.split(":", 1)[1]


def _topic_binding(principal: str, template: str, organ_id: str, operation: str) -> AclEntry:
    """A prefixed binding when `{agency}` is followed by a dot (it then covers exactly that
    agency's topics: an OrganId never contains the dot that ends it), else the literal name."""
    if "{agency}" in template:
        head, tail = template.split("{agency}", 1)
        if tail.startswith("."):
            return AclEntry(principal, "topic", f"{head}{organ_id}.", "prefixed", operation)
        return AclEntry(principal, "topic", f"{head}{organ_id}{tail}", "literal", operation)
    return AclEntry(principal, "topic", template, "literal", operation)


def plan_with_reasons(config: GatewayConfig) -> list[tuple[str, AclEntry]]:
    """(why, binding) for every agency principal, in a stable order, without repeats."""
    t = config.topics
    out: list[tuple[str, AclEntry]] = []
    seen: set[AclEntry] = set()

    def add(why: str, entry: AclEntry) -> None:
        if entry not in seen:
            seen.add(entry)
            out.append((why, entry))

    for principal, agencies in config.principals().items():
        for organ_id in agencies:
            for name in ("outbound_documents", "outbound_receipts"):
                add(WHY["outbound"].format(agency=organ_id),
                    _topic_binding(principal, getattr(t, name), organ_id, "write"))
            for name in ("inbound_documents", "inbound_receipts"):
                add(WHY["inbound"].format(agency=organ_id),
                    _topic_binding(principal, getattr(t, name), organ_id, "read"))
            add(WHY["delivery"].format(agency=organ_id),
                _topic_binding(principal, t.delivery, organ_id, "read"))
        group = f"{user_name(principal)}."
        add(WHY["group"].format(name=group),
            AclEntry(principal, "group", group, "prefixed", "read"))
    return out


def plan(config: GatewayConfig) -> list[AclEntry]:
    return [entry for _, entry in plan_with_reasons(config)]


# ---------------------------------------------------------------------------------------------
# What a broker allows that it should not


def _gateway_topics(config: GatewayConfig) -> dict[str, str]:
    t = config.topics
    return {"ledger": t.ledger, "audit": t.audit, "deadletter": t.deadletter,
            "poller": t.poller}


def findings(config: GatewayConfig, acls: list[AclEntry] | None) -> list[str]:
    """What the broker (its ACLs, or None: it has no authorizer) lets agency software do
    beyond its own topics. Empty when nothing was found. DENY bindings are not weighed: a
    finding may be one a DENY already closes, never the other way round."""
    out: list[str] = []
    if acls is None:
        out.append("the broker has no authorizer (DescribeAcls: security disabled): every "
                   "client may write every topic, so any agency's software can send in any "
                   "agency's name and write the ledger, audit and dead-letter topics; set "
                   "authorizer.class.name (docs/security.md)")
        return out
    principals = config.principals()
    own = _gateway_topics(config)
    allow_writes = [a for a in acls if a.permission == "allow" and a.operation in WRITE_OPERATIONS
                    and a.resource_type == "topic"]
    for acl in allow_writes:
        everyone = acl.principal in ("User:*", "*")
        if not everyone and acl.principal not in principals:
            continue
        who = "every principal (User:*)" if everyone else acl.principal
        for role, topic in own.items():
            if acl.covers("topic", topic):
                out.append(f"{who} may write the gateway's {role} topic {topic} (ACL "
                           f"{acl.operation.upper()} {acl.pattern} {acl.name!r})")
        mine = set(principals.get(acl.principal, ()))
        for agency in config.agencies:
            if agency.organ_id in mine:
                continue
            for kind in ("documents", "receipts"):
                topic = config.topics.outbound_topic(kind, agency.organ_id)
                if acl.covers("topic", topic):
                    out.append(f"{who} may write {agency.organ_id}'s outbound topic {topic} "
                               f"without a grant (ACL {acl.operation.upper()} {acl.pattern} "
                               f"{acl.name!r})")
                    break
    return list(dict.fromkeys(out))


def layout_findings(config: GatewayConfig) -> list[str]:
    """What the configuration itself leaves open (no broker needed)."""
    out = []
    if not config.topics.per_agency:
        out.append("[topics] per_agency = false: all agencies share the outbound topics, so no "
                   "ACL can stop one agency's software sending in another's name; unsafe for "
                   "production (a lab only)")
    if config.kafka.security_protocol in ("PLAINTEXT", "SSL") and not (
            config.kafka.security_protocol == "SSL" and config.kafka.ssl_certfile):
        out.append(f"[kafka] security_protocol = {config.kafka.security_protocol} without a "
                   "client identity: the gateway is not authenticated, and a broker that "
                   "lets it in unauthenticated lets agency software in the same way; use "
                   "SASL_SSL (SCRAM) or mutual TLS")
    return out


# ---------------------------------------------------------------------------------------------
# The operator's commands


def _acl_command(entry: AclEntry) -> str:
    args = ["kafka-acls.sh", "--bootstrap-server", "$BOOTSTRAP", "--command-config",
            "admin.properties", "--add", "--allow-principal", entry.principal,
            "--operation", entry.operation.capitalize()]
    args += [f"--{entry.resource_type}", entry.name]
    args += ["--resource-pattern-type", entry.pattern]
    return " ".join(a if a.startswith("$") else shlex.quote(a) for a in args)


def commands(config: GatewayConfig) -> list[str]:
    """The shell lines (with comments) that create the users and ACLs of `plan(config)`."""
    lines = [
        "# Kafka users and ACLs for this gateway's agencies (edoc-gateway acl plan).",
        "# Run with an administrator's credentials in admin.properties; BOOTSTRAP is the",
        "# brokers' SASL_SSL listener. Brokers need, once (docs/security.md):",
        "#   authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "#   allow.everyone.if.no.acl.found=false",
        f"#   super.users=User:{config.kafka.sasl_username or '<the gateway user>'};"
        "User:<your administrator>",
        "",
        "# One SCRAM user per principal; each password goes only to that agency's vendor.",
    ]
    for principal in config.principals():
        lines.append("kafka-configs.sh --bootstrap-server $BOOTSTRAP --command-config "
                     "admin.properties --alter --entity-type users --entity-name "
                     f"{shlex.quote(user_name(principal))} --add-config "
                     "'SCRAM-SHA-512=[password=<from your secret store>]'")
    current = None
    for why, entry in plan_with_reasons(config):
        if entry.principal != current:
            current = entry.principal
            agencies = ", ".join(config.principals()[current])
            lines += ["", f"# {current} (acts for {agencies})"]
        lines.append(f"#   {why}")
        lines.append(_acl_command(entry))
    return lines


# ---------------------------------------------------------------------------------------------
# Command line


def _load(args: argparse.Namespace) -> GatewayConfig:
    from gateway.cli import UsageError
    from gateway.config import ConfigError, load_config

    try:
        return load_config(Path(args.config), os.environ)
    except ConfigError as exc:
        raise UsageError(f"{exc.reason}: {exc.message}") from exc


def cmd_plan(args: argparse.Namespace) -> int:
    config = _load(args)
    for finding in layout_findings(config):
        print(f"# WARNING: {finding}")
    print("\n".join(commands(config)))
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    """Create the plan's ACLs with the gateway's own (super user) credentials."""
    from connectors.kafka import KafkaConnectorError, create_acls

    config = _load(args)
    try:
        count = asyncio.run(create_acls(config.kafka.settings(), plan(config)))
    except KafkaConnectorError as exc:
        print(f"edoc-gateway: {exc.reason}: {exc.message}", file=sys.stderr)
        return 1
    print(f"{count} ACL bindings in place for {len(config.principals())} principals")
    return 0


def register_cli(sub: Any) -> None:
    p = sub.add_parser("acl", help="Kafka users and ACLs: each agency writes only its own "
                                   "topics")
    acl_sub = p.add_subparsers(dest="acl_command", required=True)
    q = acl_sub.add_parser("plan", help="print the kafka-configs.sh / kafka-acls.sh commands")
    q.add_argument("--config", required=True, help="gateway.toml")
    q.set_defaults(func=cmd_plan)
    q = acl_sub.add_parser("apply", help="create the ACLs (needs ALTER on the cluster)")
    q.add_argument("--config", required=True, help="gateway.toml")
    q.set_defaults(func=cmd_apply)


__all__ = ["WHY", "commands", "findings", "layout_findings", "plan", "plan_with_reasons",
           "register_cli", "user_name"]
