// flagd's own evaluator (@openfeature/flagd-core, from npm: what flagd's in-process providers
// run) as the reference for toggled's flagd import. Input on stdin: {"definitions": <flagd
// document, or its text>, "contexts": [...]}. Output on stdout: for each context, {flag: {value, variant,
// reason, error, metadata}} for every flag flagd resolves.
import { createRequire } from 'node:module';
const require = createRequire(process.cwd() + '/');
const { FlagdCore } = require('@openfeature/flagd-core');

const input = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
const core = new FlagdCore();
// The document as written: flagd resolves `$ref`s textually, in the order the file has them.
core.setConfigurations(typeof input.definitions === 'string' ? input.definitions : JSON.stringify(input.definitions));
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const out = [];
for (const context of input.contexts) {
  const answers = {};
  for (const d of core.resolveAll(context, quiet)) {
    answers[d.flagKey] = {
      value: d.value ?? null, variant: d.variant ?? null, reason: d.reason, error: d.errorCode ?? null,
      metadata: d.flagMetadata ?? {},
    };
  }
  out.push(answers);
}
process.stdout.write(JSON.stringify(out));
