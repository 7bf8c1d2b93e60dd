// One file of Unleash's client specification (@unleash/client-specification, from npm) against a
// toggled serving that file's flags as `toggled import unleash` translated them. Input on stdin:
// {"url", "admin", "client", "frontend", "spec": path}. Every case is asked three ways:
// - "evaluate": toggled's own POST /evaluate/all, its answer read as Unleash reads a toggle;
// - "server": Unleash's Node.js SDK (unleash-client), evaluating /api/client/features locally;
// - "frontend": Unleash's browser SDK (unleash-proxy-client), asking /api/frontend.
// Output on stdout, as the other scripts' a list: [{"cases": N, "resessioned": N (frontend cases asked with the SDK's own
// session id), "failures": [{way, description, toggle, context, want, got}]}].
import { createRequire } from 'node:module';
import { once } from 'node:events';
const require = createRequire(process.cwd() + '/');
const fs = require('node:fs');
const { initialize } = require('unleash-client');
const { UnleashClient, InMemoryStorageProvider } = require('unleash-proxy-client');

const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const spec = JSON.parse(fs.readFileSync(input.spec, 'utf8'));
const cases = [
  ...(spec.tests ?? []).map((t) => ({ ...t, kind: 'enabled' })),
  ...(spec.variantTests ?? []).map((t) => ({ ...t, kind: 'variant' })),
];

const LIVE = ['STATIC', 'TARGETING_MATCH', 'SPLIT', 'OVERRIDE'];

// A payload as Unleash delivers it: strings as they are, numbers as their text, else JSON.
function payload(value) {
  if (typeof value === 'string') return { type: 'string', value };
  if (typeof value === 'number') return { type: 'number', value: String(value) };
  return { type: 'json', value: JSON.stringify(value) };
}

// An /evaluate answer read as an Unleash toggle: {enabled, variant}.
function asToggle(answer) {
  if (!answer || answer.error) {
    return { enabled: false, variant: { name: 'disabled', enabled: false, feature_enabled: false } };
  }
  if (typeof answer.value === 'boolean') {
    return { enabled: answer.value, variant: { name: 'disabled', enabled: false, feature_enabled: answer.value } };
  }
  if (!LIVE.includes(answer.reason)) {
    return { enabled: false, variant: { name: 'disabled', enabled: false, feature_enabled: false } };
  }
  if (answer.variant === 'disabled') {
    return { enabled: true, variant: { name: 'disabled', enabled: false, feature_enabled: true } };
  }
  return {
    enabled: true,
    variant: { name: answer.variant, enabled: true, payload: payload(answer.value), feature_enabled: true },
  };
}

async function viaEvaluate(c) {
  const res = await fetch(`${input.url}/evaluate/all`, {
    method: 'POST',
    headers: { authorization: `Bearer ${input.admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ context: c.context }),
  });
  if (!res.ok) throw new Error(`/evaluate/all answered ${res.status}: ${await res.text()}`);
  const all = await res.json();
  const t = asToggle(all.flags[c.toggleName]);
  return c.kind === 'enabled' ? t.enabled : t.variant;
}

// The fields a variant is compared on (the SDKs add `featureEnabled`; older specifications omit
// `feature_enabled`).
function comparable(v, want) {
  if (typeof v !== 'object' || v === null) return v;
  const out = { name: v.name, enabled: v.enabled };
  if (v.payload !== undefined) out.payload = v.payload;
  if (want && want.feature_enabled !== undefined) out.feature_enabled = v.feature_enabled;
  return out;
}

const failures = [];
let resessioned = 0;
function check(way, c, got) {
  const want = comparable(c.expectedResult, c.expectedResult);
  const have = comparable(got, c.expectedResult);
  if (JSON.stringify(want) !== JSON.stringify(have)) {
    failures.push({ way, description: c.description, toggle: c.toggleName, context: c.context, want, got: have });
  }
}

for (const c of cases) check('evaluate', c, await viaEvaluate(c));

const server = initialize({
  url: `${input.url}/api/`,
  appName: 'toggled-spec',
  customHeaders: { Authorization: input.client },
  disableMetrics: true,
  refreshInterval: 60000,
  backupPath: input.backup,
});
let failure = null;
server.on('error', (e) => { failure = e; });
server.on('warn', () => {});
await Promise.race([once(server, 'synchronized'), once(server, 'error')]);
if (failure) throw new Error(`the Node.js SDK reported an error: ${failure}`);
for (const c of cases) {
  check('server', c, c.kind === 'enabled' ? server.isEnabled(c.toggleName, c.context) : server.getVariant(c.toggleName, c.context));
}
server.destroy();

for (const c of cases) {
  const { properties, ...fields } = c.context;
  const browser = new UnleashClient({
    url: `${input.url}/api/frontend`,
    clientKey: input.frontend,
    appName: 'toggled-spec',
    disableRefresh: true,
    disableMetrics: true,
    storageProvider: new InMemoryStorageProvider(),
    context: { ...fields, properties },
  });
  let error = null;
  browser.on('error', (e) => { error = e; });
  await browser.start();
  if (error) throw new Error(`the browser SDK reported an error: ${JSON.stringify(error)}`);
  // The browser SDK sends a session id of its own when the context has none. Where that id
  // changes toggled's answer (a share by sessionId), the case is a different question: it is
  // compared with toggled's /evaluate for the context the SDK sent.
  let asked = c;
  const session = browser.getContext().sessionId;
  if (c.context.sessionId === undefined && session !== undefined) {
    const sent = { ...c, context: { ...c.context, sessionId: String(session) } };
    const answer = await viaEvaluate(sent);
    if (JSON.stringify(comparable(answer, c.expectedResult)) !== JSON.stringify(comparable(c.expectedResult, c.expectedResult))) {
      asked = { ...sent, expectedResult: answer };
      resessioned += 1;
    }
  }
  check('frontend', asked, c.kind === 'enabled' ? browser.isEnabled(c.toggleName) : browser.getVariant(c.toggleName));
  browser.stop();
}

process.stdout.write(JSON.stringify([{ cases: cases.length, resessioned, failures }]));
