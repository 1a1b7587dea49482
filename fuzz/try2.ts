import { readFileSync } from 'node:fs';
import { fuzzTarget } from './run.js';
import { targetNamed } from './targets/index.js';
const r = fuzzTarget(targetNamed(process.argv[2]!), {
  inputs: Number(process.argv[3]),
  seed: 1,
  hangMs: 300,
  corpus: '/tmp/corpus',
});
for (const [i, f] of r.findings.entries()) {
  const d = readFileSync(r.written[i]!, 'utf8');
  console.log(f.kind, f.message.split('\n')[0], d.length, JSON.stringify(d.slice(0, 300)));
}
