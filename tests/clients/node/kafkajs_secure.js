// kafkajs over TLS with SASL or a client certificate: produces COUNT records to TOPIC, reads them back in a
// group, prints JSON {"produced", "consumed"}; an error prints {"error": <kafkajs error type or name>, "message"}
// and exits 1 (a refused authentication is a clear client-side error, not a hang).
// Usage: node kafkajs_secure.js BROKER TOPIC COUNT CA_FILE [sasl MECHANISM USER PASSWORD | cert CERT_FILE KEY_FILE]
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const [broker, topic, countArg, caFile, kind, ...rest] = process.argv.slice(2);
const count = Number(countArg);
const ssl = { ca: [fs.readFileSync(caFile, 'utf8')], rejectUnauthorized: true };
let sasl;
if (kind === 'sasl') {
  sasl = { mechanism: rest[0], username: rest[1], password: rest[2] };
} else if (kind === 'cert') {
  ssl.cert = fs.readFileSync(rest[0], 'utf8');
  ssl.key = fs.readFileSync(rest[1], 'utf8');
}
const kafka = new Kafka({
  clientId: 'strata-kafkajs-secure', brokers: [broker], ssl, sasl, logLevel: logLevel.NOTHING,
  retry: { retries: 1 }, connectionTimeout: 5000, authenticationTimeout: 5000,
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const producer = kafka.producer();
  await producer.connect();
  const messages = Array.from({ length: count }, (_, i) => ({ key: `k${i}`, value: `v${i}` }));
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: `kafkajs-secure-${topic}` });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const seen = new Set();
  await consumer.run({ eachMessage: async ({ message }) => { seen.add(message.value.toString()); } });
  const deadline = Date.now() + 60000;
  while (seen.size < count && Date.now() < deadline) await sleep(100);
  await consumer.disconnect();
  console.log(JSON.stringify({ produced: count, consumed: seen.size }));
}

main().catch((e) => {
  console.log(JSON.stringify({ error: e.type || e.name, message: e.message }));
  process.exit(1);
});
