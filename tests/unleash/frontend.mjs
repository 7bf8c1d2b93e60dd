// Unleash's browser SDK (unleash-proxy-client, from npm) against toggled's frontend API, as an
// application would use it. Input on stdin: {"url", "token", "flags": [...], "contexts": [...],
// "post": bool}. Output on stdout: for each context, for each flag, {enabled, variant, payload}
// as the SDK answers them.
import { createRequire } from 'node:module';
const require = createRequire(process.cwd() + '/');
const { UnleashClient, InMemoryStorageProvider } = require('unleash-proxy-client');

const input = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
const out = [];
for (const context of input.contexts) {
  const client = new UnleashClient({
    url: `${input.url}/api/frontend`,
    clientKey: input.token,
    appName: 'toggled-test',
    disableRefresh: true,
    disableMetrics: true,
    usePOSTrequests: Boolean(input.post),
    storageProvider: new InMemoryStorageProvider(),
    context,
  });
  let failure = null;
  client.on('error', (e) => { failure = e; });
  await client.start();
  if (failure) throw new Error(`the SDK reported an error: ${JSON.stringify(failure)}`);
  const answers = {};
  for (const flag of input.flags) {
    const v = client.getVariant(flag);
    answers[flag] = { enabled: client.isEnabled(flag), variant: v.name, payload: v.payload ?? null };
  }
  client.stop();
  out.push(answers);
}
process.stdout.write(JSON.stringify(out));
