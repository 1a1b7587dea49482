import type { Target } from '../target.js';
import { ikev1Codec, ikev2Codec } from './codecs.js';
import { configTarget, importTargets } from './config.js';
import { controlTarget } from './control.js';
import { pfkeyTarget, xfrmTarget } from './kernel.js';
import { ikev1Responder, ikev2Responder } from './responder.js';
import { ikev1Engine, ikev2Engine } from './session.js';

/** Every target `npm run fuzz` knows, in the order it runs them. */
export const TARGETS: readonly Target[] = [
  ikev1Codec,
  ikev2Codec,
  ikev1Responder,
  ikev2Responder,
  ikev1Engine,
  ikev2Engine,
  configTarget,
  ...importTargets,
  xfrmTarget,
  pfkeyTarget,
  controlTarget,
];

export function targetNamed(name: string): Target {
  const target = TARGETS.find((t) => t.name === name);
  if (!target)
    throw new Error(`no fuzz target '${name}' (targets: ${TARGETS.map((t) => t.name).join(', ')})`);
  return target;
}
