// Two kafkajs consumers in one group read a topic until `expected` distinct values arrived and the group has
// settled (both hold an assignment), then disconnect, committing their offsets. Prints JSON:
// {"unique", "total", "assignments": [[partitions of consumer 0], [partitions of consumer 1]]}.
// Usage: node kafkajs_group.js BROKER TOPIC GROUP EXPECTED
const { Kafka, logLevel } = require('kafkajs');

const [broker, topic, groupId, expectedArg] = process.argv.slice(2);
const expected = Number(expectedArg);
const kafka = new Kafka({ clientId: 'strata-kafkajs', brokers: [broker], logLevel: logLevel.WARN });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const seen = new Set();
  let total = 0;
  const assignments = [[], []];
  const consumers = [0, 1].map(() => kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 }));
  for (const [i, c] of consumers.entries()) {
    c.on(c.events.GROUP_JOIN, (e) => {
      assignments[i] = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b);
    });
    await c.connect();
    await c.subscribe({ topics: [topic], fromBeginning: true });
    await c.run({
      autoCommitInterval: 200,
      eachMessage: async ({ message }) => {
        seen.add(message.value.toString());
        total += 1;
      },
    });
  }
  const deadline = Date.now() + 90000;
  const settled = () => assignments[0].length > 0 && assignments[1].length > 0;
  while ((seen.size < expected || !settled()) && Date.now() < deadline) {
    await sleep(100);
  }
  await sleep(500); // a last auto-commit interval
  await Promise.all(consumers.map((c) => c.disconnect()));
  console.log(JSON.stringify({ unique: seen.size, total, assignments }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
