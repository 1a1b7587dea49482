import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';

/**
 * What `npm pack` ships, as a package consumer meets it: a license, no source map pointing at a
 * file the package lacks, and the exports a consumer may reach (the schema, package.json). The
 * package is packed as it is (dist/ from `npm run build`, which `npm ci` runs through prepare).
 */

const root = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  license: string;
};

const npm = (args: string[], cwd: string) =>
  execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });

interface Packed {
  readonly dir: string;
  readonly files: Set<string>;
}

/** Packs the checkout into a temp dir and unpacks it there as node_modules/ike-node. */
function pack(t: Test): Packed {
  const dir = mkdtempSync(join(tmpdir(), 'ike-node-pack-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [report] = JSON.parse(
    npm(['pack', '--json', '--ignore-scripts', '--pack-destination', dir], root),
  ) as { filename: string; files: { path: string }[] }[];
  const installed = join(dir, 'node_modules', pkg.name);
  mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['-xzf', join(dir, report!.filename), '-C', installed, '--strip-components=1']);
  return { dir, files: new Set(report!.files.map((file) => file.path)) };
}

t.test('the package as npm packs it', async (t) => {
  const { dir, files } = pack(t);

  t.test('a LICENSE that says what package.json says', async (t) => {
    t.ok(files.has('LICENSE'), 'LICENSE is shipped');
    const license = readFileSync(join(dir, 'node_modules', pkg.name, 'LICENSE'), 'utf8');
    t.equal(pkg.license, 'MIT');
    t.match(license, /^MIT License\n\nCopyright \(c\) \d{4} the ike-node authors\n/);
  });

  t.test('no source map points at a file the package does not ship', async (t) => {
    t.ok(files.has('dist/index.js'), 'dist/ is packed (npm run build)');
    const broken: string[] = [];
    for (const file of files) {
      if (!file.endsWith('.js') && !file.endsWith('.map')) continue;
      const text = readFileSync(join(dir, 'node_modules', pkg.name, file), 'utf8');
      const base = file.slice(0, file.lastIndexOf('/') + 1);
      const targets = file.endsWith('.map')
        ? (JSON.parse(text) as { sources: string[] }).sources
        : [...text.matchAll(/^\/\/# sourceMappingURL=(\S+)$/gm)].map((match) => match[1]!);
      for (const target of targets) {
        const path = new URL(target, `file:///${base}`).pathname.slice(1);
        if (!files.has(path)) broken.push(`${file} -> ${target}`);
      }
    }
    t.same(broken, [], 'every sourceMappingURL and map source is in the package');
  });

  t.test('a consumer reaches the schema and package.json through the exports map', async (t) => {
    const consumer = join(dir, 'consumer.mjs');
    writeFileSync(
      consumer,
      `import { createRequire } from 'node:module';
import schema from '${pkg.name}/schema/peers.schema.json' with { type: 'json' };
const require = createRequire(import.meta.url);
const manifest = require('${pkg.name}/package.json');
console.log(JSON.stringify({
  schema: schema.$schema,
  connections: typeof schema.properties.connections,
  version: manifest.version,
  main: import.meta.resolve('${pkg.name}').replace(/^.*node_modules\\//, ''),
}));
`,
    );
    const out = execFileSync(process.execPath, [consumer], { cwd: dir, encoding: 'utf8' });
    t.same(JSON.parse(out), {
      schema: 'https://json-schema.org/draft/2020-12/schema',
      connections: 'object',
      version: pkg.version,
      main: `${pkg.name}/dist/index.js`,
    });
  });
});
