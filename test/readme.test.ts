import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

/** The README's library example runs as written (only its import points at the source tree). */

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const index = new URL('../src/index.ts', import.meta.url).pathname;

t.test('the library example in the README runs and brings the tunnel up', async (t) => {
  const block = /<!-- example: library -->\s*```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  t.ok(block, 'the README has the example');
  t.match(block, /from 'ike-node';/);
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-readme-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'example.mts');
  writeFileSync(file, block!.replace(`from 'ike-node';`, `from ${JSON.stringify(index)};`));
  const run = spawnSync(process.execPath, ['--import', 'tsx', file], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, OFFICE_PSK: 'readme-test-key' },
  });
  t.equal(run.status, 0, `exit 0 (${run.stderr})`);
  t.match(run.stdout, /^office: Down -> Pending$/m);
  t.match(run.stdout, /^office: child SA added, aes256gcm16-modp2048, SPIs [0-9a-f]{8}\/[0-9a-f]{8}$/m);
  t.match(run.stdout, /^office: Pending -> Active$/m);
  t.match(run.stdout, /^initiate office: up $/m, 'initiate() resolved with the outcome');
  t.match(run.stdout, /^office: Active -> Down$/m, 'disposing stopped the nodes, Deletes sent');
});

t.test('type definitions ship with the package', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    types: string;
    files: string[];
  };
  const types = readFileSync(new URL(`../${pkg.types}`, import.meta.url), 'utf8');
  t.match(types, /createNode/, `${pkg.types} declares createNode (built by npm ci)`);
  t.match(types, /createEngine/);
  t.match(types, /IkeEngine/);
  t.ok(pkg.files.includes('dist'));
});
