import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';

/**
 * The control socket: a Unix stream socket (mode 0600) speaking newline-delimited JSON. Each
 * request `{"command": "...", ...}` gets one response `{"ok": true, "result": ...}` or
 * `{"ok": false, "error": "..."}`. A handler may keep writing to the connection afterwards
 * (the `events` stream) through its session.
 */

export type ControlRequest = { readonly command: string; readonly [key: string]: unknown };

/** One client connection, for handlers that stream. */
export interface ControlSession {
  send(message: object): void;
  onClose(listener: () => void): void;
}

export type ControlHandler = (request: ControlRequest, session: ControlSession) => Promise<unknown> | unknown;

const MAX_REQUEST = 64 * 1024;

export async function listenControl(path: string, handler: ControlHandler): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rmSync(path, { force: true });
  const server = createServer((socket) => {
    let buffer = '';
    const session: ControlSession = {
      send: (message) => {
        if (socket.writable) socket.write(`${JSON.stringify(message)}\n`);
      },
      onClose: (listener) => socket.once('close', listener),
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.length > MAX_REQUEST) {
        socket.end(`${JSON.stringify({ ok: false, error: 'request too long' })}\n`);
        return;
      }
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        void answer(line, session).then((response) => session.send(response));
      }
    });
    socket.on('error', () => socket.destroy());
  });
  const answer = async (line: string, session: ControlSession): Promise<object> => {
    try {
      const request = JSON.parse(line) as ControlRequest;
      if (typeof request?.command !== 'string') throw new Error('a request is {"command": "..."}');
      return { ok: true, result: await handler(request, session) };
    } catch (error) {
      return { ok: false, error: (error as Error).message };
    }
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
  return server;
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
