/**
 * The native socket shim's surface (src/native/shim.c, built by node-gyp at install). It moves
 * bytes and nothing else: every netlink, PF_KEY and ESP message is built and parsed in TypeScript.
 */
export interface Native {
  /** An AF_NETLINK raw socket (non-blocking, close-on-exec) of `protocol`, joined to multicast `groups`. */
  openNetlink(protocol: number, groups: readonly number[]): number;
  /** A PF_KEY v2 socket (AF_KEY, SOCK_RAW, PF_KEY_V2). */
  openPfkey(): number;
  /**
   * A TUN device (IFF_TUN | IFF_NO_PI, non-blocking): its descriptor and the name the kernel gave
   * it. `vnetHeader` adds IFF_VNET_HDR: every packet read or written starts with a struct
   * virtio_net_hdr (10 bytes); builds of the shim without writeMany ignore it. `offload`, with
   * the header, is TUNSETOFFLOAD's TUN_F_* flags: what the kernel may leave undone in the packets
   * read (checksums, TCP segmentation); the result's `offload` is what the device took (0 when
   * the kernel refused, or from builds of the shim before it: undefined).
   */
  openTun(
    name: string,
    options?: { readonly vnetHeader?: boolean; readonly offload?: number },
  ): { readonly fd: number; readonly name: string; readonly offload?: number };
  /** setsockopt(2) with a value encoded by the caller. */
  setsockopt(fd: number, level: number, name: number, value: Uint8Array): void;
  /** One write(2): a netlink or PF_KEY message to the kernel, or one packet into a TUN device. */
  write(fd: number, data: Uint8Array): void;
  /**
   * Packets into a TUN device in one call: one writev(2) of `perPacket` consecutive buffers (a
   * header and a packet) per packet (default 1). A packet the kernel refuses is skipped, EAGAIN
   * ends the batch; returns how many packets the kernel took, and throws only when none was and
   * the first failed otherwise. Optional: builds of the shim before it lack it.
   */
  writeMany?(fd: number, buffers: readonly Uint8Array[], perPacket?: number): number;
  /** UDP datagrams to one address through sendmmsg(2); returns how many the kernel took. */
  sendTo(fd: number, address: string, port: number, datagrams: readonly Uint8Array[]): number;
  /** Waits up to `timeoutMs` for one datagram (poll + read); null on timeout. For request/answer. */
  readSync(fd: number, timeoutMs: number): Uint8Array | null;
  /**
   * Reads datagrams as they arrive, on the event loop (uv_poll), up to a batch per wakeup.
   * Errors (ENOBUFS on a netlink socket...) go to onError and the watch goes on.
   */
  watch(fd: number, onData: (datagrams: Uint8Array[]) => void, onError: (error: NativeError) => void): void;
  /**
   * As watch, with one call per wakeup and all its datagrams (up to 64) in one Buffer: read by one
   * recvmmsg(2) on a socket, with each datagram's source, or read(2) by read(2) on anything else.
   * `batch` starts with `count` records, then the datagrams back to back: see batch.ts, which
   * reads them. Reads through a duplicate of the descriptor, so it may watch a socket whose own
   * reading the runtime stopped but which libuv still polls for writes (a node:dgram socket):
   * unwatch (or close) before the socket is closed, or the duplicate keeps it open. Optional:
   * builds of the shim before it lack it.
   */
  watchBatch?(
    fd: number,
    onBatch: (batch: Buffer, count: number) => void,
    onError: (error: NativeError) => void,
  ): void;
  /** Stops a watch or watchBatch (closing watchBatch's duplicate descriptor). */
  unwatch(fd: number): void;
  /** Stops any watch and closes the descriptor. */
  close(fd: number): void;
  /**
   * prctl(PR_SET_DUMPABLE): off, no core dump is written and no other process of the user may
   * ptrace the daemon or read its memory. Optional: builds of the shim before it lack it.
   */
  setDumpable?(on: boolean): void;
  /** prctl(PR_GET_DUMPABLE): 0 (not dumpable), 1, or 2 (root-only dumps, by suid_dumpable). */
  dumpable?(): number;
}

/** A system call's failure: `code` is the errno name ("ENOBUFS"), `errno` its number, `syscall` what failed. */
export interface NativeError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
}
