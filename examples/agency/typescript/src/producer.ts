// Send a document through edoc-gateway:
//   node dist/producer.js --bootstrap 127.0.0.1:9092 --sender 000.00.00.H55 \
//     --recipient 000.00.02.H55 --file /srv/edoc/inbox/1234.pdf --number 1234 \
//     --notation UBND-VP --subject "V/v thử nghiệm" [--topic edoc.outbound.documents]
//     [--jsonl events.jsonl]
// The topic is the gateway's default; --topic overrides it (the gateway's [topics]
// outbound_documents). With --jsonl the event is appended to the file (for `edoc-gateway
// conformance`) instead of being published. Prints the event id and the DocumentId.

import { appendFileSync } from "fs";
import { parseArgs } from "util";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { attachment, documentSend, publish, structured, validate } from "./events";

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      bootstrap: { type: "string" }, jsonl: { type: "string" }, topic: { type: "string" },
      sender: { type: "string" }, recipient: { type: "string", multiple: true },
      file: { type: "string", multiple: true }, number: { type: "string" },
      notation: { type: "string" }, subject: { type: "string" },
      place: { type: "string", default: "Thái Nguyên" },
    },
  });
  const required = ["sender", "recipient", "file", "number", "notation", "subject"] as const;
  for (const name of required) {
    if (!values[name]) { console.error(`--${name} is required`); return 2; }
  }
  const attachments = await Promise.all(
    values.file!.map((f, i) => attachment(f, String(i + 1))));
  const event = documentSend({
    sender: values.sender!, recipients: values.recipient!, number: values.number!,
    notation: values.notation!, subject: values.subject!, place: values.place!, attachments,
  });
  const problems = validate(event.type, event.data);
  if (problems.length) { console.error(problems.join("\n")); return 1; }
  if (values.jsonl) {
    appendFileSync(values.jsonl, JSON.stringify(structured(event)) + "\n", "utf-8");
  } else if (values.bootstrap) {
    const kafka = new Kafka({ clientId: `qlvb-${values.sender}`, brokers: values.bootstrap.split(","),
                              logLevel: logLevel.WARN });
    // Idempotent producer: a retry after a lost acknowledgement does not duplicate the record.
    // The Java-compatible (murmur2) partitioner, as the gateway's client uses: records with the
    // same key (DocumentId) land in the same partition whoever writes them.
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1,
                                      createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    try {
      await publish(producer, event, values.topic);
    } finally {
      await producer.disconnect();
    }
  } else {
    console.error("give --bootstrap (publish) or --jsonl (write to a file)");
    return 2;
  }
  console.log(`id=${event.id} document_id=${event.key}`);
  return 0;
}

main().then((code) => process.exit(code), (err) => { console.error(err); process.exit(1); });
