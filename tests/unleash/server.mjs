// Unleash's Node.js server SDK (unleash-client, from npm) against toggled's client API: the SDK
// fetches /api/client/features and evaluates locally, as a service would. Input on stdin:
// {"url", "token", "flags": [...], "contexts": [...]}. Output on stdout: for each context, for
// each flag, {enabled, variant, payload} as the SDK answers them.
import { createRequire } from 'node:module';
import { once } from 'node:events';
const require = createRequire(process.cwd() + '/');
const { initialize } = require('unleash-client');

const input = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
const client = initialize({
  url: `${input.url}/api/`,
  appName: 'toggled-test',
  customHeaders: { Authorization: input.token },
  disableMetrics: false,
  metricsInterval: 600000,
  refreshInterval: 60000,
  backupPath: process.env.BACKUP_DIR,
});
let failure = null;
client.on('error', (e) => { failure = e; });
await Promise.race([once(client, 'synchronized'), once(client, 'error')]);
if (failure) throw new Error(`the SDK reported an error: ${failure}`);
const out = [];
for (const context of input.contexts) {
  const answers = {};
  for (const flag of input.flags) {
    const v = client.getVariant(flag, context);
    answers[flag] = { enabled: client.isEnabled(flag, context), variant: v.name, payload: v.payload ?? null };
  }
  out.push(answers);
}
// What an application's SDK reports: its counts, sent to /api/client/metrics.
await client.destroyWithFlush();
process.stdout.write(JSON.stringify(out));
