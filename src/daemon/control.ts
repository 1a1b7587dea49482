import { chmodSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { ensureUnserved } from './control-lock.js';
import { type ControlRequest, parseControlRequest } from './control-request.js';

/**
 * The control socket: a Unix stream socket (mode 0600) speaking newline-delimited JSON. Each
 * request `{"command": "...", ...}` gets one response `{"ok": true, "result": ...}` or
 * `{"ok": false, "error": "..."}`. A handler may keep writing to the connection afterwards
 * (the `events` stream) through its session.
 *
 * It is a local attack surface, so everything a client can make it hold is bounded: requests are
 * answered one at a time per connection (reading pauses meanwhile), empty lines are skipped
 * unanswered, a connection whose unread output passes `maxOutputBytes` is dropped, there are at
 * most `maxConnections`, and one that sends nothing for `idleTimeoutMs` is closed (an event
 * stream excepted: it is idle by design, and one per connection).
 */

export type { ControlRequest } from './control-request.js';

/** One client connection, for handlers that stream. */
export interface ControlSession {
  send(message: object): void;
  onClose(listener: () => void): void;
  /**
   * Makes this connection a stream (no idle timeout from now on). False when it already is one:
   * a connection carries one stream.
   */
  stream(): boolean;
}

export type ControlHandler = (request: ControlRequest, session: ControlSession) => Promise<unknown> | unknown;

export interface ControlLimits {
  readonly maxConnections: number;
  readonly idleTimeoutMs: number;
  /** Output a client has not read yet: past this it is disconnected. */
  readonly maxOutputBytes: number;
}

export const CONTROL_LIMITS: ControlLimits = {
  maxConnections: 64,
  idleTimeoutMs: 60_000,
  maxOutputBytes: 4 * 1024 * 1024,
};

const MAX_REQUEST = 64 * 1024;

/** A listening control socket; close() disconnects every client and removes the socket file. */
export interface ControlServer {
  readonly path: string;
  readonly connections: number;
  close(): Promise<void>;
}

export async function listenControl(
  path: string,
  handler: ControlHandler,
  limits: Partial<ControlLimits> = {},
): Promise<ControlServer> {
  const { maxConnections, idleTimeoutMs, maxOutputBytes } = { ...CONTROL_LIMITS, ...limits };
  const clients = new Set<Socket>();
  const server = createServer((socket) => {
    if (clients.size >= maxConnections) {
      socket.on('error', () => socket.destroy());
      socket.end(
        `${JSON.stringify({ ok: false, error: `too many control connections (${maxConnections})` })}\n`,
      );
      return;
    }
    clients.add(socket);
    socket.once('close', () => clients.delete(socket));
    socket.on('timeout', () => socket.destroy());
    socket.setTimeout(idleTimeoutMs);
    let streaming = false;
    const session: ControlSession = {
      send: (message) => {
        if (!socket.writable) return;
        socket.write(`${JSON.stringify(message)}\n`);
        // A client that does not read cannot make the daemon hold its output.
        if (socket.writableLength > maxOutputBytes) socket.destroy();
      },
      onClose: (listener) => socket.once('close', listener),
      stream: () => {
        if (streaming) return false;
        streaming = true;
        socket.setTimeout(0);
        return true;
      },
    };
    let buffer = '';
    let busy = false;
    let refused = false;
    /** Answers the complete lines in `buffer`, one at a time: reading waits meanwhile. */
    const serve = async (): Promise<void> => {
      busy = true;
      socket.pause();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0 && !socket.destroyed) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.trim() === '') continue;
        // A request being answered is not idleness (a command may wait for its outcome).
        socket.setTimeout(0);
        const response = await answer(line, session);
        if (!streaming) socket.setTimeout(idleTimeoutMs);
        session.send(response);
        // Backpressure: the next request waits until this answer has gone out.
        if (socket.writableNeedDrain)
          await new Promise((resolve) => socket.once('drain', resolve).once('close', resolve));
      }
      busy = false;
      if (!socket.destroyed) socket.resume();
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (refused) return;
      buffer += chunk;
      if (buffer.length - buffer.lastIndexOf('\n') - 1 > MAX_REQUEST) {
        refused = true;
        buffer = '';
        socket.end(`${JSON.stringify({ ok: false, error: 'request too long' })}\n`);
        return;
      }
      if (!busy && buffer.includes('\n')) void serve();
    });
    socket.on('error', () => socket.destroy());
  });
  const answer = async (line: string, session: ControlSession): Promise<object> => {
    try {
      const request = parseControlRequest(line);
      return { ok: true, result: await handler(request, session) };
    } catch (error) {
      return { ok: false, error: (error as Error).message };
    }
  };
  await ensureUnserved(path);
  // Bound inside a directory only we can enter, given its final mode, then moved into place: no
  // moment where another user could connect (a connection made then would outlive a chmod).
  const privateDir = mkdtempSync(join(dirname(path), `.${basename(path)}-`));
  try {
    const bound = join(privateDir, 's');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(bound, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    chmodSync(bound, 0o600);
    renameSync(bound, path); // replaces a socket left behind by a daemon that died
  } catch (error) {
    server.close();
    throw error;
  } finally {
    rmSync(privateDir, { recursive: true, force: true });
  }
  return {
    path,
    get connections() {
      return clients.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        // Clients are disconnected, not waited for: an idle one must not hold up a stop.
        server.close(() => resolve());
        for (const socket of clients) socket.destroy();
        rmSync(path, { force: true });
      }),
  };
}

/**
 * Sends one request and resolves with the result, or rejects with the daemon's error. Messages the
 * daemon streams before its answer (`initiate` with "wait": {"log": ...}) go to `onMessage`.
 */
export function controlRequest(
  path: string,
  request: ControlRequest,
  timeoutMs = 5000,
  onMessage: (message: Record<string, unknown>) => void = () => {},
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer on ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    readMessages(socket, (message) => {
      if (message.ok === undefined) {
        onMessage(message);
        return true;
      }
      clearTimeout(timer);
      socket.end();
      if (message.ok) resolve(message.result);
      else reject(new Error(message.error));
      return false;
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot reach the daemon at ${path}: ${error.message}`));
    });
  });
}

/**
 * Subscribes to the daemon's event stream: `onEvent` gets each event until the returned close
 * function is called or the daemon goes away (then `onEnd`).
 */
export async function controlEvents(
  path: string,
  onEvent: (event: unknown) => void,
  onEnd: (error?: Error) => void = () => {},
): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let subscribed = false;
    socket.on('connect', () => socket.write(`${JSON.stringify({ command: 'events' })}\n`));
    readMessages(socket, (message) => {
      if (!subscribed) {
        if (!message.ok) {
          socket.destroy();
          reject(new Error(message.error));
          return false;
        }
        subscribed = true;
        resolve(() => socket.end());
      } else if (message.event !== undefined) {
        onEvent(message.event);
      }
      return true;
    });
    socket.on('error', (error) => {
      if (!subscribed) reject(new Error(`cannot reach the daemon at ${path}: ${error.message}`));
      else onEnd(error);
    });
    socket.on('close', () => {
      if (subscribed) onEnd();
    });
  });
}

/** A message from the daemon: an answer ({"ok": ...}) or a streamed one ({"event"}, {"log"}). */
type ControlMessage = {
  readonly ok?: boolean;
  readonly result?: unknown;
  readonly error?: string;
  readonly event?: unknown;
  readonly [key: string]: unknown;
};

/** Hands each newline-delimited JSON message a client receives to `onMessage`, until it returns false. */
function readMessages(socket: Socket, onMessage: (message: ControlMessage) => boolean): void {
  let buffer = '';
  let reading = true;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while (reading && (newline = buffer.indexOf('\n')) >= 0) {
      const message = JSON.parse(buffer.slice(0, newline)) as ControlMessage;
      buffer = buffer.slice(newline + 1);
      reading = onMessage(message);
    }
  });
}
