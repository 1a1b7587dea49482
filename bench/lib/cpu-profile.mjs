/**
 * Preloaded into ike-node by `bench:esp --profile DIR` (NODE_OPTIONS=--import ...), because
 * Node does not take --cpu-prof from NODE_OPTIONS: profiles the whole process through the
 * inspector and writes DIR/ike-node-<pid>.cpuprofile when it exits (open it in Chrome DevTools or
 * speedscope). The in-process inspector session answers synchronously, so 'exit' can still ask.
 */
import { writeFileSync } from 'node:fs';
import process from 'node:process';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.IKE_NODE_CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 200 });
  session.post('Profiler.start');
  process.once('exit', () => {
    session.post('Profiler.stop', (error, result) => {
      if (!error)
        writeFileSync(join(dir, `ike-node-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
