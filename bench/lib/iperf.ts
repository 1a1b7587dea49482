import type { ChildProcess } from 'node:child_process';
import { delay, type Ns } from '../../conformance/lib/netns.js';

/**
 * iperf3 between two namespaces of a topology: a server bound to the right inner address, a
 * single-stream TCP client bound to the left inner address, so the traffic crosses the tunnel.
 */

export interface StreamResult {
  /** Goodput the receiver saw, Mbit/s (10^6 bit/s), over the timed seconds. */
  readonly mbps: number;
  /** TCP retransmissions the sender counted. */
  readonly retransmits: number;
  readonly seconds: number;
}

export const IPERF_PORT = 5201;

/** Starts `iperf3 -s` in `ns` on `address`; the topology stops it. */
export function startIperfServer(ns: Ns, address: string): ChildProcess {
  return ns.spawn('iperf3', ['-s', '-B', address, '-p', String(IPERF_PORT)], { stdio: 'ignore' });
}

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bits_per_second?: number; seconds?: number };
    sum_sent?: { retransmits?: number };
  };
}

/**
 * One timed TCP stream from `from` to `to` (`seconds` measured after `omit` seconds of slow start
 * that iperf3 leaves out). Retries while the server is not listening yet.
 */
export async function tcpStream(
  ns: Ns,
  from: string,
  to: string,
  seconds: number,
  omit = 1,
): Promise<StreamResult> {
  const args = ['-c', to, '-B', from, '-p', String(IPERF_PORT), '-t', String(seconds), '-O', String(omit)];
  for (let attempt = 0; ; attempt++) {
    const { stdout } = await ns.exec('iperf3', [...args, '-J'], {
      allowFail: true,
      timeoutMs: (seconds + omit + 15) * 1000,
    });
    let json: IperfJson;
    try {
      json = JSON.parse(stdout) as IperfJson;
    } catch {
      json = { error: stdout.trim() || 'no output' };
    }
    const received = json.end?.sum_received;
    if (!json.error && received?.bits_per_second !== undefined) {
      return {
        mbps: received.bits_per_second / 1e6,
        retransmits: json.end?.sum_sent?.retransmits ?? 0,
        seconds: received.seconds ?? seconds,
      };
    }
    // "unable to connect to server": the server is still starting.
    if (attempt >= 20 || !/connect/i.test(json.error ?? '')) {
      throw new Error(`iperf3 ${from} -> ${to}: ${json.error ?? 'no result'}`);
    }
    await delay(100);
  }
}
