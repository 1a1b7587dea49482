import { readFileSync } from 'node:fs';
import { buildEngine, type SessionReproducer } from './session.js';
const r = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as SessionReproducer;
await new Promise((ok) => setTimeout(ok, 500));
(globalThis as { __n?: number }).__n = 0;
const { engine } = buildEngine(r.side);
for (const [i, op] of r.history.entries()) {
  const t = performance.now();
  const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
  console.log(i, op.op, op.now, op.op === 'receive' ? op.data.slice(32, 40) : '');
  const actions =
    op.op === 'receive'
      ? engine.receive(unhex(op.data), op.local, op.remote, op.now)
      : op.op === 'tick'
        ? engine.tick(op.now)
        : op.op === 'initiate'
          ? engine.initiate(op.name, op.now)
          : engine.terminate(op.name, op.now);
  console.log(
    '   ',
    (performance.now() - t).toFixed(1),
    'ms',
    actions
      .map((a) => (a.type === 'event' && a.event.type === 'log' ? a.event.message.slice(0, 100) : a.type))
      .join(' | ')
      .slice(0, 600),
  );
}
console.log('next', engine.nextTimeout());
