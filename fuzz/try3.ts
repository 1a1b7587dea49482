import { readFileSync } from 'node:fs';
import { configTarget } from './targets/config.js';
const d = new Uint8Array(readFileSync(process.argv[2]!));
for (let i = 0; i < 3; i++) {
  const t = performance.now();
  configTarget.replay(d, { hangMs: Infinity });
  console.log(performance.now() - t);
}
