/** The userspace ESP data plane (RFC 4303 over a TUN device, ESP in UDP per RFC 3948). */
export {
  DROP_CAUSES,
  type DropCause,
  type TrafficLimits,
  UserspaceBackend,
  type UserspaceBackendOptions,
  type UserspaceIo,
  type UserspaceRoutes,
  type UserspaceTun,
} from './backend.js';
export {
  type EspDropCause,
  EspInbound,
  type EspOpenResult,
  type EspOptions,
  EspOutbound,
  type EspSaParams,
  SequenceExhaustedError,
} from './esp.js';
export {
  createEspTransform,
  type EspKeys,
  type EspTransform,
  type EspTransformImplementation,
} from './esp-crypto.js';
export {
  buildPacket,
  type Flow,
  insertEsp,
  internetChecksum,
  parsePacket,
  setTransportChecksum,
} from './packet.js';
export { ReplayWindow, type ReplayVerdict, SEQUENCE_MAX, SequenceCounter } from './replay.js';
export { compileSelector, PolicyTable, selectorPrefixes } from './spd.js';
