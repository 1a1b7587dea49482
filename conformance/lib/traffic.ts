import { run, type Ns } from './netns.js';

/**
 * Traffic through a tunnel: a TCP transfer of random bytes whose SHA-256 both ends compute, with
 * node itself on each side (nothing to install). Also packet counts from a capture file.
 */

const SERVER = `
const { createServer } = require('node:net');
const { createHash } = require('node:crypto');
const [address, port] = process.argv.slice(1);
const server = createServer((socket) => {
  const hash = createHash('sha256');
  let bytes = 0;
  socket.on('data', (chunk) => { bytes += chunk.length; hash.update(chunk); });
  socket.on('end', () => {
    process.stdout.write(JSON.stringify({ bytes, sha256: hash.digest('hex') }) + '\\n');
    socket.end();
    server.close();
  });
});
server.listen(Number(port), address, () => process.stdout.write('listening\\n'));
`;

const CLIENT = `
const { connect } = require('node:net');
const { createHash, randomBytes } = require('node:crypto');
const [local, address, port, total] = process.argv.slice(1);
const hash = createHash('sha256');
const socket = connect({ host: address, port: Number(port), localAddress: local }, () => {
  const started = Date.now();
  let left = Number(total);
  const write = () => {
    while (left > 0) {
      const chunk = randomBytes(Math.min(65536, left));
      left -= chunk.length;
      hash.update(chunk);
      if (!socket.write(chunk)) return socket.once('drain', write);
    }
    socket.end();
  };
  socket.on('close', () =>
    process.stdout.write(JSON.stringify({ bytes: Number(total), sha256: hash.digest('hex'), ms: Date.now() - started }) + '\\n'),
  );
  write();
});
socket.setTimeout(30000, () => { process.stderr.write('stalled\\n'); process.exit(1); });
`;

export interface TransferResult {
  readonly sent: number;
  readonly received: number;
  /** Both ends computed the same SHA-256 over what they sent and received. */
  readonly intact: boolean;
  readonly ms: number;
}

/** Sends `bytes` random bytes from `from` (source `fromAddress`) to `to`'s `toAddress`:`port`. */
export async function tcpTransfer(
  from: Ns,
  fromAddress: string,
  to: Ns,
  toAddress: string,
  bytes: number,
  port = 5001,
): Promise<TransferResult> {
  const server = to.spawn('node', ['-e', SERVER, toAddress, String(port)]);
  let output = '';
  server.stdout?.setEncoding('utf8').on('data', (text: string) => (output += text));
  const ended = new Promise<void>((resolve) => server.on('exit', () => resolve()));
  for (let i = 0; !output.includes('listening'); i++) {
    if (i > 100) throw new Error('the TCP sink did not start');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const client = await from.exec(
    'node',
    ['-e', CLIENT, fromAddress, toAddress, String(port), String(bytes)],
    {
      timeoutMs: 60_000,
    },
  );
  await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 5000))]);
  server.kill();
  const sent = JSON.parse(client.stdout.trim()) as { bytes: number; sha256: string; ms: number };
  const line = output.split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`the TCP sink reported nothing: ${output}`);
  const received = JSON.parse(line) as { bytes: number; sha256: string };
  return { sent: sent.bytes, received: received.bytes, intact: sent.sha256 === received.sha256, ms: sent.ms };
}

/** How many packets of a capture file match a tcpdump filter. */
export async function countPackets(file: string, filter: string): Promise<number> {
  // Counted by wc: a 10 MB transfer prints more lines than execFile buffers.
  const result = await run('sh', ['-c', 'tcpdump -n -r "$0" "$1" 2>/dev/null | wc -l', file, filter]);
  return Number(result.stdout.trim());
}

/**
 * How many bytes the packets of a capture that match a display filter carry. Bytes, not packets:
 * a sender using UDP GSO hands the wire one large datagram per batch, which the capture (taken
 * before segmentation) shows whole.
 */
export async function countBytes(file: string, displayFilter: string): Promise<number> {
  const result = await run('sh', [
    '-c',
    'tshark -n -r "$0" -Y "$1" -T fields -e frame.len 2>/dev/null | awk \'{ s += $1 } END { print s + 0 }\'',
    file,
    displayFilter,
  ]);
  return Number(result.stdout.trim());
}
