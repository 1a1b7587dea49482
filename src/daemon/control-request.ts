/**
 * One line of the control socket (newline-delimited JSON) as a request: a JSON object with a
 * string `command`. A pure function, apart from the socket, so that it can be tested and fuzzed
 * on its own; anything else a line may be is a ControlRequestError with what was expected.
 */

export type ControlRequest = { readonly command: string; readonly [key: string]: unknown };

/** A line that is not a request: its message goes back to the client as the error. */
export class ControlRequestError extends Error {
  override readonly name = 'ControlRequestError';
}

export function parseControlRequest(line: string): ControlRequest {
  let request: unknown;
  try {
    request = JSON.parse(line);
  } catch (error) {
    throw new ControlRequestError((error as Error).message);
  }
  if (typeof request !== 'object' || request === null || Array.isArray(request))
    throw new ControlRequestError('a request is {"command": "..."}');
  if (typeof (request as { command?: unknown }).command !== 'string')
    throw new ControlRequestError('a request is {"command": "..."}');
  return request as ControlRequest;
}
