// Written by `npm run schema:types` from schema/peers.schema.json: change the schema, not this file.

/** A peers.json configuration, as createNode() takes it. */
export type PeersConfig = {
  readonly listen?: ConfigListen;
  readonly kernel?: 'memory' | 'xfrm' | 'pfkey' | 'userspace';
  readonly crypto?: 'node' | 'noble';
  /** threads that compute Diffie-Hellman key exchanges off the event loop: "auto" (one per CPU on a machine with two or more) or a whole number from 0 (none: on the event loop) to 256 */
  readonly workers?: 'auto' | number;
  readonly control?: {
    /** the path of the control socket */
    readonly socket?: string;
  };
  readonly log?: ConfigLog;
  /** an object { "listen": "127.0.0.1:9469" } (no metrics key: no metrics endpoint) */
  readonly metrics?: {
    /** an IP address and port to serve metrics on, such as "127.0.0.1:9469" or "[::1]:9469" */
    readonly listen: string;
  };
  readonly debug?: {
    /** the path of a directory to write negotiated keys to as Wireshark's decryption tables, for a lab (relative to this file's directory) */
    readonly keyLog?: string;
    /** let the daemon be dumped (core dumps, ptrace and /proc/PID/mem by its user), keys included; by default it makes itself non-dumpable (prctl PR_SET_DUMPABLE 0): true or false */
    readonly coreDumps?: boolean;
  };
  /** settings of the ESP data plane (kernel backends xfrm, pfkey, userspace) */
  readonly dataPlane?: {
    /** the anti-replay window in packets: a multiple of 32 from 32 to 4096 */
    readonly replayWindow?: number;
    /** the name of the userspace backend's TUN device: 1 to 15 letters, digits, '_', '.' or '-' */
    readonly tun?: string;
    /** the TUN device's MTU: a whole number from 576 to 9000 (room for the ESP and UDP headers below the path MTU) */
    readonly mtu?: number;
  };
  readonly retransmit?: {
    /** seconds before the first resend: a number from 0.1 to 60 */
    readonly timeout?: number;
    /** the factor each resend multiplies the wait by: a number from 1 to 4 */
    readonly backoff?: number;
    /** resends before giving up: a whole number from 0 to 20 */
    readonly tries?: number;
  };
  readonly ike?: {
    /** the largest IP datagram an IKE message may fill before it is sent in fragments (RFC 7383, when the peer supports them): a whole number from 576 to 9000 */
    readonly fragmentSize?: number;
    /** half-open IKEv2 SAs above which IKE_SA_INIT must carry a cookie (RFC 7296 2.6; 0: always): a whole number from 0 to 100000 */
    readonly cookieThreshold?: number;
    /** half-open IKE SAs (responders not yet authenticated) kept at most; when full, the oldest of the address holding the most makes room for a first message from a quieter one: a whole number from 1 to 1000000 */
    readonly maxHalfOpen?: number;
    /** half-open IKE SAs kept at most from one peer address (IKEv2 asks for cookies from an address holding half of it): a whole number from 1 to 1000000 */
    readonly maxHalfOpenPerAddress?: number;
  };
  /** an object of endpoint groups by name, each a list of subnets */
  readonly endpointGroups?: {
    readonly [name: string]: ConfigEndpointGroup;
  };
  /** an object of IKE policies by name */
  readonly ikePolicies?: {
    readonly [name: string]: ConfigIkePolicy;
  };
  /** an object of IPsec policies by name */
  readonly ipsecPolicies?: {
    readonly [name: string]: ConfigIpsecPolicy;
  };
  /** an object of connections by name */
  readonly connections?: {
    readonly [name: string]: ConfigConnection;
  };
  /** the location of this schema, for editors (ike-node ignores it) */
  readonly $schema?: string;
};

/** a name of up to 64 letters, digits, '.', '_' and '-', starting with a letter or digit */
export type ConfigName = string;

export type ConfigPort = number;

export type ConfigLogLevel = 'error' | 'warn' | 'info' | 'debug';

export type ConfigListen = {
  /** a list of IPv4 or IPv6 addresses to receive IKE on (0.0.0.0 or :: for all) */
  readonly addresses?: readonly ConfigIpAddress[];
  readonly port?: ConfigPort;
  readonly natPort?: ConfigPort;
};

export type ConfigLog = {
  readonly level?: ConfigLogLevel;
  /** "text" (one line per event) or "json" (one JSON object per line) */
  readonly format?: 'text' | 'json';
  /** an object of log levels by subsystem: ike, cfg, net, knl, crypto, ctl */
  readonly subsystems?: {
    readonly ike?: ConfigLogLevel;
    readonly cfg?: ConfigLogLevel;
    readonly net?: ConfigLogLevel;
    readonly knl?: ConfigLogLevel;
    readonly crypto?: ConfigLogLevel;
    readonly ctl?: ConfigLogLevel;
  };
};

/** an IPv4 or IPv6 address */
export type ConfigIpAddress = string;

/** a subnet (10.1.0.0/16), an address range (10.1.0.10-10.1.0.20) or an address */
export type ConfigSubnet = string;

/** a list of subnets, each a subnet (10.1.0.0/16), an address range (10.1.0.10-10.1.0.20) or an address */
export type ConfigSubnets = readonly ConfigSubnet[];

/** a non-empty list of subnets, each a subnet (10.1.0.0/16), an address range (10.1.0.10-10.1.0.20) or an address */
export type ConfigEndpointGroup = readonly ConfigSubnet[];

/** the name of an entry of endpointGroups (instead of subnets) */
export type ConfigEndpointGroupName = string;

/** a selector { "subnet", "protocol", "port" } */
export type ConfigSelector = {
  readonly subnet?: ConfigSubnet;
  /** a protocol: "udp", "tcp", "icmp", "icmpv6", "sctp" or a whole number from 0 to 255 */
  readonly protocol?: 'udp' | 'tcp' | 'icmp' | 'icmpv6' | 'sctp' | number;
  readonly port?: number;
};

/** a list of selectors such as { "subnet": "10.1.0.0/16", "protocol": "udp", "port": 1701 } */
export type ConfigSelectors = readonly ConfigSelector[];

/** an identity: an IP address, a host name (vpn.example.net or @vpn.example.net), user@example.net or keyid:... */
export type ConfigIdentity = string;

/** our end: an object { "address", "id", "subnets" or "endpointGroup", "selectors" } */
export type ConfigLocal = {
  readonly address?: ConfigIpAddress;
  readonly id?: ConfigIdentity;
  readonly subnets?: ConfigSubnets;
  readonly endpointGroup?: ConfigEndpointGroupName;
  readonly selectors?: ConfigSelectors;
};

/** the other end: an object { "address", "port", "natPort", "id", "subnets" or "endpointGroup", "selectors" } */
export type ConfigPeer = {
  /** an IPv4 or IPv6 address, or "any" */
  readonly address: string;
  readonly port?: ConfigPort;
  readonly natPort?: ConfigPort;
  readonly id?: ConfigIdentity;
  readonly subnets?: ConfigSubnets;
  readonly endpointGroup?: ConfigEndpointGroupName;
  readonly selectors?: ConfigSelectors;
};

/** a pre-shared key: a string, { "file": path } or { "env": "VARIABLE" } */
export type ConfigPsk = string | ConfigPskSource;

/** exactly one of "file" or "env" */
export type ConfigPskSource =
  | {
      /** the path of a file holding the key (relative to this file's directory) */
      readonly file: string;
      /** the name of an environment variable holding the key */
      readonly env?: string;
    }
  | {
      /** the path of a file holding the key (relative to this file's directory) */
      readonly file?: string;
      /** the name of an environment variable holding the key */
      readonly env: string;
    };

/** a connection object */
export type ConfigConnection = {
  /** the name of an entry of ikePolicies, or a policy object */
  readonly ikePolicy: string | ConfigIkePolicy;
  /** the name of an entry of ipsecPolicies, or a policy object */
  readonly ipsecPolicy: string | ConfigIpsecPolicy;
  readonly local?: ConfigLocal;
  readonly peer: ConfigPeer;
  readonly psk: ConfigPsk;
  readonly start?: 'initiate' | 'respond' | 'on-traffic';
};

export type ConfigIkeVersion = 1 | 2 | 'v1' | 'v2';

/** "main" (aggressive mode is not supported: it sends a hash of the pre-shared key that an eavesdropper can attack offline) */
export type ConfigPhase1Mode = 'main';

/** an IKE proposal such as "aes256-sha256-modp2048" */
export type ConfigIkeProposal = string;

/** a list of IKE proposals such as "aes256-sha256-modp2048" (or one as a string) */
export type ConfigIkeProposals = ConfigIkeProposal | readonly ConfigIkeProposal[];

/** an ESP proposal such as "aes256-sha256" (no DH group: that is pfs) */
export type ConfigEspProposal = string;

/** a list of ESP proposals such as "aes256-sha256" (or one as a string; no DH group: that is pfs) */
export type ConfigEspProposals = ConfigEspProposal | readonly ConfigEspProposal[];

/** an encryption algorithm: 3des, aes-128, aes-192, aes-256, or a keyword such as aes128ctr or aes256gcm16 */
export type ConfigEncryptionName = string;

/** an encryption algorithm: 3des, aes-128, aes-192, aes-256, or a keyword such as aes128ctr or aes256gcm16, or a list of them */
export type ConfigEncryption = ConfigEncryptionName | readonly ConfigEncryptionName[];

/** an integrity algorithm: md5, sha1, sha256, sha384 or sha512 */
export type ConfigIntegrityName = string;

/** an integrity algorithm: md5, sha1, sha256, sha384 or sha512, or a list of them */
export type ConfigIntegrity = ConfigIntegrityName | readonly ConfigIntegrityName[];

/** a Diffie-Hellman group: group2, group5, group14, group15, group16, group19, group20, group31, or a keyword such as modp1024 or ecp256 */
export type ConfigDhGroupName = string;

/** a Diffie-Hellman group: group2, group5, group14, group15, group16, group19, group20, group31, or a keyword such as modp1024 or ecp256, or a list of them */
export type ConfigDhGroup = ConfigDhGroupName | readonly ConfigDhGroupName[];

/** a whole number of seconds from 60 to 86400, or { "units": "seconds", "value": N } */
export type ConfigLifetime =
  | ConfigLifetimeSeconds
  | {
      /** "seconds" (for a limit in kilobytes use lifetimeKilobytes, in an IPsec policy) */
      readonly units?: 'seconds';
      readonly value: ConfigLifetimeSeconds;
    };

/** a whole number of seconds from 60 to 86400 */
export type ConfigLifetimeSeconds = number;

/** a whole number of seconds before expiry to start rekeying, less than the lifetime (default min(540, lifetime / 10)) */
export type ConfigRekeyMargin = number;

/** a whole number of seconds by which rekeying may start earlier, at random (default a third of rekeyMargin) */
export type ConfigRekeyFuzz = number;

/** an object { "delay", "timeout", "action" }, or false for no DPD */
export type ConfigDpd =
  | false
  | {
      readonly delay?: ConfigDpdSeconds;
      readonly timeout?: ConfigDpdSeconds;
      readonly action?: 'clear' | 'restart' | 'hold';
    };

/** a whole number of seconds from 1 to 86400 */
export type ConfigDpdSeconds = number;

/** an IKE policy object */
export type ConfigIkePolicy = {
  readonly version?: ConfigIkeVersion;
  readonly ikeVersion?: ConfigIkeVersion;
  readonly mode?: ConfigPhase1Mode;
  readonly phase1NegotiationMode?: ConfigPhase1Mode;
  readonly proposals?: ConfigIkeProposals;
  readonly encryption?: ConfigEncryption;
  readonly encryptionAlgorithm?: ConfigEncryption;
  readonly integrity?: ConfigIntegrity;
  readonly authAlgorithm?: ConfigIntegrity;
  readonly dhGroup?: ConfigDhGroup;
  readonly lifetime?: ConfigLifetime;
  readonly rekeyMargin?: ConfigRekeyMargin;
  readonly rekeyFuzz?: ConfigRekeyFuzz;
  readonly dpd?: ConfigDpd;
};

/** "esp" (AH is not supported) */
export type ConfigIpsecProtocol = 'esp';

export type ConfigEncapsulationMode = 'tunnel' | 'transport';

/** an IPsec policy object */
export type ConfigIpsecPolicy = {
  readonly protocol?: ConfigIpsecProtocol;
  readonly transformProtocol?: ConfigIpsecProtocol;
  readonly mode?: ConfigEncapsulationMode;
  readonly encapsulationMode?: ConfigEncapsulationMode;
  /** a list of the modes accepted when responding, such as ["tunnel", "transport"] (default: mode alone) */
  readonly acceptModes?: readonly ConfigEncapsulationMode[];
  /** a list of the PFS choices accepted when responding: Diffie-Hellman groups and "none", such as ["modp1024", "none"] (default: pfs alone) */
  readonly acceptPfs?: readonly string[];
  readonly proposals?: ConfigEspProposals;
  readonly encryption?: ConfigEncryption;
  readonly encryptionAlgorithm?: ConfigEncryption;
  readonly integrity?: ConfigIntegrity;
  readonly authAlgorithm?: ConfigIntegrity;
  /** "none", false, or a Diffie-Hellman group: group2, group5, group14, group15, group16, group19, group20, group31, or a keyword such as modp1024 or ecp256 */
  readonly pfs?: false | string;
  readonly lifetime?: ConfigLifetime;
  /** a whole number of kilobytes of at least 1 */
  readonly lifetimeKilobytes?: number;
  readonly rekeyMargin?: ConfigRekeyMargin;
  readonly rekeyFuzz?: ConfigRekeyFuzz;
};
