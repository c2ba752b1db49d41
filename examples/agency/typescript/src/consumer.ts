// Read what edoc-gateway publishes for one agency:
//   node dist/consumer.js --bootstrap 127.0.0.1:9092 --agency 000.00.02.H55 [--idle-timeout 10]
//     [--topic edoc.delivery.000.00.02.H55 --topic edoc.inbound.000.00.02.H55.documents ...]
// Each --topic replaces the agency's own topics (the gateway's [topics] templates).
// Delivery outcomes, arrived documents and arrived receipts from the agency's own topics,
// deduplicated on ce_id; an offset is committed only after its event was handled.

import { parseArgs } from "util";
import { Kafka, logLevel } from "kafkajs";
import { decode, readTopics, ReceivedEvent } from "./events";

function describe(e: ReceivedEvent): string {
  const kind = e.type.replace("vn.gov.edoc.", "").replace(".v1", "");
  const d = e.data ?? {};
  switch (kind) {
    case "delivery.accepted": return `${kind}: ${d.document_id} accepted as ${d.axis_doc_id}`;
    case "delivery.failed": return `${kind}: ${d.document_id} ${d.reason}: ${d.message}`;
    case "document.arrived": {
      const h = d.package.message_header;
      return `${kind}: ${h.document_id} from ${h.from.organ_id}: ${h.subject} ` +
        `(signature ${d.signature.status})`;
    }
    case "receipt.arrived": {
      const h = d.message_header;
      return `${kind}: status ${h.status_code} from ${h.from.organ_id} about ${h.response_for.document_id}`;
    }
    default: return `${kind}: ${e.id}`;
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      bootstrap: { type: "string" }, agency: { type: "string" }, group: { type: "string" },
      "idle-timeout": { type: "string" }, topic: { type: "string", multiple: true },
    },
  });
  if (!values.bootstrap || !values.agency) {
    console.error("--bootstrap and --agency are required");
    return 2;
  }
  const kafka = new Kafka({ clientId: `qlvb-${values.agency}`, brokers: values.bootstrap.split(","),
                            logLevel: logLevel.WARN });
  const consumer = kafka.consumer({ groupId: values.group ?? `${values.agency}.qlvb-ts` });
  const seen = new Set<string>(); // in a product: a table with a unique key on ce_id
  let lastEvent = Date.now();
  await consumer.connect();
  await consumer.subscribe({ topics: values.topic?.length ? values.topic : readTopics(values.agency),
                             fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      lastEvent = Date.now();
      const event = decode(message);
      if (event && event.agency === values.agency && !seen.has(event.id)) {
        seen.add(event.id);
        console.log(describe(event));
      }
      // Commit after handling: a crash re-reads the record, never skips it.
      await consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
    },
  });
  const idle = Number(values["idle-timeout"] ?? "0") * 1000;
  await new Promise<void>((resolve) => {
    process.on("SIGINT", () => resolve());
    process.on("SIGTERM", () => resolve());
    if (idle > 0) {
      const timer = setInterval(() => {
        if (Date.now() - lastEvent > idle) { clearInterval(timer); resolve(); }
      }, 500);
    }
  });
  await consumer.disconnect();
  return 0;
}

main().then((code) => process.exit(code), (err) => { console.error(err); process.exit(1); });
