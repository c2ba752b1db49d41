// What an agency's software needs to talk to edoc-gateway over Kafka: build, check, publish
// and read CloudEvents in Kafka binary mode. The same as ../python/edoc_events.py, for vendors
// whose products are written in TypeScript/JavaScript. docs/integration.md explains it.

import { createHash, randomUUID } from "crypto";
import { createReadStream, readFileSync, statSync } from "fs";
import * as path from "path";
import { pathToFileURL } from "url";
import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";
import type { IHeaders, KafkaMessage, Producer } from "kafkajs";

export const DOCUMENT_SEND = "vn.gov.edoc.document.send.v1";
export const RECEIPT_SEND = "vn.gov.edoc.receipt.send.v1";
// The gateway's default topics: each agency has its own, named with its OrganId; its Kafka user
// may write only its own outbound topics, and the gateway sends an event in the name of the
// agency whose topic it was published to.
export const TOPICS: Record<string, string> = {
  [DOCUMENT_SEND]: "edoc.outbound.{agency}.documents",
  [RECEIPT_SEND]: "edoc.outbound.{agency}.receipts",
};
export const READ_TOPICS = ["edoc.delivery.{agency}", "edoc.inbound.{agency}.documents",
                            "edoc.inbound.{agency}.receipts"];

export function outboundTopic(eventType: string, agency: string): string {
  return TOPICS[eventType].replace("{agency}", agency);
}

export function readTopics(agency: string): string[] {
  return READ_TOPICS.map((t) => t.replace("{agency}", agency));
}

export interface OutgoingEvent {
  id: string;          // ce_id: a UUID per request; reuse it when you retry the same request
  type: string;
  source: string;      // your system, e.g. urn:qlvb:000.00.00.H55
  agency: string;      // the sending agency's OrganId (checked against the data)
  key: string;         // the DocumentId: the record key, so a document's events stay in order
  time: string;        // RFC 3339 with offset
  data: Record<string, unknown>;
}

// schemas/events of the repository (examples/agency/typescript/dist/ -> ../../../../schemas).
export const schemaDir = process.env.EDOC_SCHEMAS ??
  path.resolve(__dirname, "..", "..", "..", "..", "schemas", "events");

const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);

export function validate(eventType: string, data: unknown): string[] {
  const file = path.join(schemaDir, `${eventType}.schema.json`);
  const schema = JSON.parse(readFileSync(file, "utf-8"));
  const check = ajv.getSchema(schema.$id) ?? ajv.compile(schema);
  if (check(data)) return [];
  return (check.errors ?? []).map((e) => `$${e.instancePath.replace(/\//g, ".")}: ${e.message}`);
}

function vietnamNow(): { time: string; date: string } {
  const local = new Date(Date.now() + 7 * 3600 * 1000).toISOString(); // UTC+7, no DST
  return { time: local.replace("Z", "+07:00"), date: local.slice(0, 10) };
}

export async function attachment(file: string, contentId = "1",
                                 contentType = "application/pdf"): Promise<Record<string, unknown>> {
  const hash = createHash("sha256");
  await new Promise<void>((resolve, reject) => {
    createReadStream(file).on("data", (c) => hash.update(c)).on("end", resolve).on("error", reject);
  });
  const absolute = path.resolve(file);
  return {
    content_id: contentId, attachment_name: path.basename(absolute), content_type: contentType,
    uri: pathToFileURL(absolute).href, sha256: hash.digest("hex"), size: statSync(absolute).size,
  };
}

export function documentSend(opts: {
  sender: string; senderName?: string; recipients: string[]; number: string; notation: string;
  subject: string; place: string; attachments: Record<string, unknown>[];
}): OutgoingEvent {
  const { time, date } = vietnamNow();
  const documentId = `${opts.sender},${date.replace(/-/g, "/")},${opts.number}/${opts.notation}`;
  return {
    id: randomUUID(), type: DOCUMENT_SEND, source: `urn:qlvb:${opts.sender}`,
    agency: opts.sender, key: documentId, time,
    data: {
      message_header: {
        from: { organ_id: opts.sender, organ_name: opts.senderName ?? opts.sender },
        to: opts.recipients.map((r) => ({ organ_id: r })),
        document_id: documentId,
        code: { code_number: opts.number, code_notation: opts.notation },
        promulgation_info: { place: opts.place, promulgation_date: date },
        document_type: { type: 1, type_name: "Công văn" },
        subject: opts.subject,
      },
      attachments: opts.attachments,
      secrecy: "none",
    },
  };
}

// A receipt about a document that arrived: `header` is the arrived event's
// package.message_header.
export function receiptSend(sender: string, header: any, statusCode: string,
                            description: string): OutgoingEvent {
  const { time } = vietnamNow();
  const code = header.code ?? {};
  const responseFor: Record<string, unknown> = {
    organ_id: header.from.organ_id, document_id: header.document_id,
  };
  if (code.code_number) {
    responseFor.code = [code.code_number, code.code_notation].filter(Boolean).join("/");
  }
  if (header.promulgation_info?.promulgation_date) {
    responseFor.promulgation_date = header.promulgation_info.promulgation_date;
  }
  return {
    id: randomUUID(), type: RECEIPT_SEND, source: `urn:qlvb:${sender}`, agency: sender,
    key: header.document_id, time,
    data: { message_header: { from: { organ_id: sender }, response_for: responseFor,
                              status_code: statusCode, description } },
  };
}

export function headers(event: OutgoingEvent): IHeaders {
  return {
    ce_specversion: "1.0", ce_id: event.id, ce_source: event.source, ce_type: event.type,
    ce_time: event.time, ce_subject: event.key, ce_agency: event.agency,
    "content-type": "application/json",
  };
}

// The event in the CloudEvents JSON format: one line of an `edoc-gateway conformance` file.
export function structured(event: OutgoingEvent): Record<string, unknown> {
  return {
    specversion: "1.0", id: event.id, source: event.source, type: event.type, time: event.time,
    subject: event.key, agency: event.agency, datacontenttype: "application/json",
    data: event.data,
  };
}

export async function publish(producer: Producer, event: OutgoingEvent, topic?: string) {
  const problems = validate(event.type, event.data);
  if (problems.length) throw new Error(`${event.type} does not match its schema: ${problems[0]}`);
  await producer.send({
    topic: topic ?? outboundTopic(event.type, event.agency),
    acks: -1,
    messages: [{ key: event.key, value: JSON.stringify(event.data), headers: headers(event) }],
  });
}

export interface ReceivedEvent {
  id: string; type: string; agency?: string; key?: string; data: any;
}

export function decode(message: KafkaMessage): ReceivedEvent | undefined {
  const h = message.headers ?? {};
  const text = (name: string) => {
    const v = h[name];
    return v === undefined ? undefined : Array.isArray(v) ? String(v[v.length - 1]) : String(v);
  };
  const id = text("ce_id");
  const type = text("ce_type");
  if (!id || !type) return undefined;
  return {
    id, type, agency: text("ce_agency"), key: message.key?.toString("utf-8"),
    data: message.value ? JSON.parse(message.value.toString("utf-8")) : undefined,
  };
}
