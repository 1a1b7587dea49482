/** PF_KEY v2 (RFC 2367) for Linux af_key and OpenBSD: codec, channel and kernel backend. */
export * from './algorithms.js';
export * from './backend.js';
export * from './channel.js';
export * from './codec.js';
export * from './constants.js';
export * from './errors.js';
export * from './messages.js';
export * from './open.js';
export * from './selectors.js';
