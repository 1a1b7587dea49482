import { ControlRequestError, parseControlRequest } from '../../src/daemon/control-request.js';
import { mutateText } from '../mutate.js';
import { bytesTarget, utf8 } from '../target.js';

/** The control socket's request line (src/daemon/control-request.ts): JSON and the command check. */
const SEEDS = [
  '{"command":"status"}',
  '{"command":"status","name":"office"}',
  '{"command":"initiate","name":"office"}',
  '{"command":"terminate","name":"office"}',
  '{"command":"events"}',
  '{"command":"reload"}',
  '{"command":"metrics"}',
  '{"command":"stop"}',
  '{}',
  '[]',
  'null',
  '{"command":1}',
];

export const controlTarget = bytesTarget({
  name: 'control',
  description: 'the control socket request parser (parseControlRequest)',
  seeds: () => SEEDS.map(utf8.encode),
  mutate: (rng, input, seeds) => utf8.encode(mutateText(rng, utf8.decode(input), seeds.map(utf8.decode))),
  check: (input) => void parseControlRequest(utf8.decode(input)),
  typed: (error) => error instanceof ControlRequestError,
});
