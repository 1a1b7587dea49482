import { parseArgs } from 'node:util';
import { CORPUS, fuzzTarget } from './run.js';
import { TARGETS, targetNamed } from './targets/index.js';

/**
 * npm run fuzz -- [--target NAME[,NAME...]] [--inputs N] [--seed N] [--hang-ms N] [--no-write] [--list]
 *
 * Runs each target in turn with a deterministic seed, and prints per target the inputs run, the
 * rate and the distinct findings; each finding's reproducer is written to fuzz/corpus/<target>/
 * (unless --no-write), where `npm test` replays it from then on. Exits 1 when anything was found.
 */

const { values } = parseArgs({
  options: {
    target: { type: 'string', short: 't' },
    inputs: { type: 'string', short: 'n', default: '10000' },
    seed: { type: 'string', short: 's', default: '1' },
    'hang-ms': { type: 'string', default: '1000' },
    'no-write': { type: 'boolean', default: false },
    list: { type: 'boolean', default: false },
  },
});

if (values.list) {
  for (const target of TARGETS) console.log(`${target.name.padEnd(18)} ${target.description}`);
  process.exit(0);
}

const targets = values.target ? values.target.split(',').map((name) => targetNamed(name.trim())) : TARGETS;
const inputs = Number(values.inputs);
const seed = Number(values.seed);
const hangMs = Number(values['hang-ms']);
if (!Number.isInteger(inputs) || inputs < 1) throw new Error(`--inputs ${values.inputs}: a positive integer`);
if (!Number.isInteger(seed)) throw new Error(`--seed ${values.seed}: an integer`);
if (!(hangMs > 0)) throw new Error(`--hang-ms ${values['hang-ms']}: a positive number of milliseconds`);

let found = 0;
console.log(`seed ${seed}, ${inputs} inputs per target, hang bound ${hangMs} ms of CPU`);
console.log(
  `${'target'.padEnd(18)} ${'inputs'.padStart(10)} ${'seconds'.padStart(8)} ${'inputs/s'.padStart(9)} findings`,
);
for (const target of targets) {
  const report = fuzzTarget(target, { inputs, seed, hangMs, ...(!values['no-write'] && { corpus: CORPUS }) });
  found += report.findings.length;
  console.log(
    `${report.target.padEnd(18)} ${String(report.inputs).padStart(10)} ${report.seconds.toFixed(1).padStart(8)} ` +
      `${Math.round(report.inputs / report.seconds)
        .toString()
        .padStart(9)} ${report.findings.length}`,
  );
  for (const [i, finding] of report.findings.entries()) {
    console.log(`  ${finding.kind}: ${finding.message.split('\n').join('\n    ')}`);
    if (report.written[i]) console.log(`    reproducer: ${report.written[i]}`);
  }
  for (const { finding, note } of report.known)
    console.log(
      `  known (fuzz/known.ts, not counted): ${finding.message.split('\n')[0]!.slice(0, 160)}\n    ${note}`,
    );
}
process.exit(found ? 1 : 0);
