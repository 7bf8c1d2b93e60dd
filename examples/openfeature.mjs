// OpenFeature from Node.js through toggled's OFREP endpoints.
// npm install @openfeature/server-sdk@1.23.0 @openfeature/ofrep-provider@0.1.3 @openfeature/ofrep-core@0.1.4
// node openfeature.mjs   (TOGGLED_URL defaults to http://127.0.0.1:8080)
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

const baseUrl = process.env.TOGGLED_URL ?? 'http://127.0.0.1:8080';
await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl }));
const client = OpenFeature.getClient();
const ctx = { targetingKey: 'user-4', email: 'dev@example.com' };
console.log(JSON.stringify(await client.getBooleanDetails('new_payment_flow', false, ctx)));
console.log(JSON.stringify(await client.getStringDetails('enhanced_search', 'legacy_search', { targetingKey: '607' })));
