import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { kernelLabMissing, runInKernelLab } from './lib/kernel-lab.js';
import { missing } from './lib/scenario.js';

/**
 * The kernel lab boots and its kernel has what the host's lacks: an ESP state can be added over
 * XFRM netlink. One boot, a few seconds; failed (with the reason) where the lab is not installed.
 */

const script = join(dirname(fileURLToPath(import.meta.url)), 'kernel-lab', 'xfrm-esp.sh');

const unavailable = kernelLabMissing();

t.test('ip xfrm state add ... proto esp works in the kernel lab', { timeout: 120_000 }, async (t) => {
  if (missing(t, unavailable)) return;
  const result = await runInKernelLab(script, { timeoutSec: 60, modules: ['esp4', 'xfrm_user'] });
  t.equal(result.code, 0, `script exit status (${result.stderr.trim().split('\n').join('; ')})`);
  t.match(result.output, /XFRM_ESP_STATE_OK/, 'ESP state added and listed');
  t.comment(
    `kernel lab run: ${result.ms.toFixed(0)} ms; ${result.output.match(/guest kernel: .*/)?.[0] ?? ''}`,
  );
});
