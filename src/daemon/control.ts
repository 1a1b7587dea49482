import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';
import { type ControlRequest, parseControlRequest } from './control-request.js';

/**
 * The control socket: a Unix stream socket (mode 0600) speaking newline-delimited JSON. Each
 * request `{"command": "...", ...}` gets one response `{"ok": true, "result": ...}` or
 * `{"ok": false, "error": "..."}`. A handler may keep writing to the connection afterwards
 * (the `events` stream) through its session.
 */

export type { ControlRequest } from './control-request.js';

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
      const request = parseControlRequest(line);
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

/** Sends one request and resolves with the result, or rejects with the daemon's error. */
export function controlRequest(path: string, request: ControlRequest, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buffer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer on ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      socket.end();
      const response = JSON.parse(buffer.slice(0, newline)) as {
        ok: boolean;
        result?: unknown;
        error?: string;
      };
      if (response.ok) resolve(response.result);
      else reject(new Error(response.error));
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
    let buffer = '';
    let subscribed = false;
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify({ command: 'events' })}\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const message = JSON.parse(buffer.slice(0, newline)) as {
          ok?: boolean;
          error?: string;
          event?: unknown;
        };
        buffer = buffer.slice(newline + 1);
        if (!subscribed) {
          if (!message.ok) {
            socket.destroy();
            reject(new Error(message.error));
            return;
          }
          subscribed = true;
          resolve(() => socket.end());
        } else if (message.event !== undefined) {
          onEvent(message.event);
        }
      }
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
