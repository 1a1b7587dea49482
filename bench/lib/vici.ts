import { createConnection, type Socket } from 'node:net';

/**
 * A minimal client of strongSwan's VICI protocol (its plugin's README describes it: 32-bit
 * length-prefixed segments; packet type CMD_REQUEST 0 with a name, CMD_RESPONSE 1; messages of
 * KEY_VALUE elements, type 3, an 8-bit key length and a 16-bit value length), enough to send
 * flat commands such as `initiate` and read flat answers. The handshake benchmark uses it to
 * start thousands of already loaded connections at once (`timeout = -1` returns at once), which
 * swanctl, one process per connection, cannot.
 */

const CMD_REQUEST = 0;
const CMD_RESPONSE = 1;
const KEY_VALUE = 3;

export class Vici {
  readonly #socket: Socket;
  #buffer = Buffer.alloc(0);
  /** One command at a time per connection (the protocol has no request ids). */
  readonly #waiting: ((answer: Record<string, string>) => void)[] = [];

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
  }

  static connect(path: string): Promise<Vici> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path, () => resolve(new Vici(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends a command with flat key/values; resolves with the flat key/values of the response. */
  request(command: string, values: Readonly<Record<string, string>>): Promise<Record<string, string>> {
    const parts: Buffer[] = [Buffer.from([CMD_REQUEST, command.length]), Buffer.from(command)];
    for (const [key, value] of Object.entries(values)) {
      const data = Buffer.from(value);
      const length = Buffer.alloc(2);
      length.writeUInt16BE(data.length);
      parts.push(Buffer.from([KEY_VALUE, key.length]), Buffer.from(key), length, data);
    }
    const body = Buffer.concat(parts);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    this.#socket.write(Buffer.concat([header, body]));
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  close(): void {
    this.#socket.end();
  }

  #read(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= 4) {
      const length = this.#buffer.readUInt32BE(0);
      if (this.#buffer.length < 4 + length) return;
      const packet = this.#buffer.subarray(4, 4 + length);
      this.#buffer = this.#buffer.subarray(4 + length);
      if (packet[0] === CMD_RESPONSE) this.#waiting.shift()?.(flatValues(packet.subarray(1)));
    }
  }
}

/** The KEY_VALUE elements at the top of a message (sections and lists are skipped over). */
function flatValues(message: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  let depth = 0;
  while (at < message.length) {
    const type = message[at++]!;
    if (type === 1 || type === 4) at += 1 + message[at]!; // SECTION_START, LIST_START: a name
    if (type === 1) depth++;
    else if (type === 2) depth--;
    else if (type === 3 || type === 5) {
      let key = '';
      if (type === 3) {
        key = message.toString('latin1', at + 1, at + 1 + message[at]!);
        at += 1 + message[at]!;
      }
      const length = message.readUInt16BE(at);
      const value = message.toString('utf8', at + 2, at + 2 + length);
      at += 2 + length;
      if (type === 3 && depth === 0) out[key] = value;
    }
  }
  return out;
}
