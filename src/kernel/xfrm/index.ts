/** The Linux XFRM (netlink) kernel backend and its codec. */
export * from './algorithms.js';
export * from './backend.js';
export * from './constants.js';
export * from './errors.js';
export * from './messages.js';
export * from './open.js';
export * from './selectors.js';
export * from './structs.js';
