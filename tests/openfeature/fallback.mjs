// The official OpenFeature Node.js SDK and OFREP provider on flags with `fallback: caller`.
// Input on stdin: {"url"}. Output: [details of beta_footer (off), region_promo (unmatched),
// region_promo (matched)], as the SDK returns them.
import { createRequire } from 'node:module';
const require = createRequire(process.cwd() + '/');
const { OpenFeature } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');

const input = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl: input.url }));
const client = OpenFeature.getClient();
const us = { targetingKey: 'u1', country: 'US' };
const out = [
  await client.getBooleanDetails('beta_footer', true, us),
  await client.getStringDetails('region_promo', "caller's text", us),
  await client.getStringDetails('region_promo', "caller's text", { targetingKey: 'u1', country: 'DE' }),
];
await OpenFeature.close();
process.stdout.write(JSON.stringify(out));
