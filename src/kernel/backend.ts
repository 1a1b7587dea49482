import type { Endpoint } from '../core/endpoint.js';
import type { KernelEvent } from '../core/kernel-event.js';
import type { ChildSa } from '../core/sa.js';
import type { TrafficCounters } from '../core/status.js';
import type { TrafficSelector } from '../core/traffic-selector.js';

export type { KernelEvent };

/**
 * Where negotiated SAs go: `xfrm` (Linux netlink), `pfkey` (PF_KEY v2), `userspace` (ESP in Node
 * over a TUN device) and `memory` (records calls). One interface, so the daemon never knows which.
 */
export interface KernelBackend {
  readonly name: string;
  /**
   * The userspace data plane sends ESP only inside UDP (RFC 3948) on the IKE socket, as
   * strongSwan's kernel-libipsec does: the engine then claims a NAT so that both ends encapsulate.
   */
  readonly forcesUdpEncapsulation?: boolean;
  /**
   * Reserves an inbound SPI for a child SA being negotiated with `remote` (XFRM_MSG_ALLOCSPI,
   * SADB_GETSPI), without blocking: the engine asks with a `reserve-spi` action and goes on with
   * its other inputs meanwhile. Absent: the engine picks SPIs at random.
   */
  reserveSpi?(local: string, remote: string): Promise<number>;
  /** The same, answered at once (a blocking round trip): for callers that cannot wait. */
  allocateSpi?(local: string, remote: string): number;
  /** Installs both directions of a child SA and the policies that lead traffic to it. */
  install(child: ChildSa): Promise<void>;
  /**
   * Installs only the inbound SA of a child SA still being negotiated: an IKEv1 quick mode
   * responder does so before it sends message 2, because the initiator sends on its new SA as soon
   * as it has sent message 3, before the responder has read it. `install` of the same child later
   * adds the outbound SA and the policies; `remove` takes the inbound SA away if the negotiation
   * fails. Absent: `install` does it all (a data plane that reads ESP and IKE in order needs no
   * head start).
   */
  installInbound?(child: ChildSa): Promise<void>;
  /**
   * Removes a child SA (or its inbound SA alone, see installInbound); its policies go with the
   * last child SA that uses them.
   */
  remove(child: ChildSa): Promise<void>;
  /** Policies without SAs for a connection that starts on traffic: the first packet is an ACQUIRE. */
  trap?(trap: TrapPolicy): Promise<void>;
  untrap?(connection: string): Promise<void>;
  /** Bytes and packets through a child SA, for backends that count them. */
  counters?(child: ChildSa): Promise<TrafficCounters | undefined>;
  /**
   * ESP in UDP that arrived on the daemon's NAT-T socket (only the userspace backend asks for it:
   * the kernel backends set UDP_ENCAP on the socket and never see it).
   */
  receiveEsp?(datagram: Uint8Array, local: Endpoint, remote: Endpoint): void;
  /** Prepares an IKE socket: bypass of our own policies, and UDP_ENCAP on the NAT-T port. */
  configureSocket?(fd: number, family: 4 | 6, natPort: boolean): void;
  /**
   * What went wrong so far, counted by cause (packets dropped for an unknown SPI or a replay,
   * garbled kernel messages, lost events...): the metrics' `ike_node_kernel_problems_total`.
   */
  problems?(): Readonly<Record<string, number>>;
  /** What is installed now. */
  installed(): readonly ChildSa[];
  /** Removes everything this backend installed, then releases its sockets and devices. */
  close(): Promise<void>;
}

/** A connection's traffic selectors, for trap policies (start on traffic). */
export interface TrapPolicy {
  readonly connection: string;
  readonly mode: 'tunnel' | 'transport';
  readonly local: string;
  readonly remote: string;
  readonly localTs: readonly TrafficSelector[];
  readonly remoteTs: readonly TrafficSelector[];
}

/** What every backend is given by the runtime that owns it. */
export interface KernelBackendHost {
  onEvent(event: KernelEvent): void;
  /** Backends log through the daemon's `knl` subsystem; they rate-limit repeated causes themselves. */
  log(level: 'error' | 'warn' | 'info' | 'debug', message: string): void;
  /** Sends a datagram from one of the daemon's IKE sockets (the userspace backend's ESP in UDP). */
  sendDatagram?(from: Endpoint, to: Endpoint, data: Uint8Array): void;
  /** The same for a batch to one peer (sendmmsg through the socket): the userspace data plane's path. */
  sendDatagrams?(from: Endpoint, to: Endpoint, datagrams: readonly Uint8Array[]): void;
}
