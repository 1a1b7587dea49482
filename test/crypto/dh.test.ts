import { DiffieHellman } from 'node:crypto';
import t from 'tap';
import { madeBefore, runDhJob } from '../../src/crypto/dh-job.js';
import {
  algorithmsOf,
  createCryptoProvider,
  ecpCurveParameters,
  InvalidPublicValueError,
  KeyExchange,
  PROVIDER_NAMES,
} from '../../src/crypto/index.js';
import { modpPrime } from '../../src/crypto/modp.js';
import { bigIntToBytes, fromHex, toHex } from '../../src/wire/bytes.js';

const providers = PROVIDER_NAMES.map((name) => createCryptoProvider(name));

t.test('each provider agrees with the other on fresh key pairs of every group', async (t) => {
  for (const group of algorithmsOf('dh')) {
    const [node, noble] = providers.map((p) => new KeyExchange(p, group.name));
    t.equal(node!.publicKey.length, group.publicLength, `${group.name} public length`);
    t.equal(noble!.publicKey.length, group.publicLength);
    const a = node!.computeSharedSecret(noble!.publicKey);
    const b = noble!.computeSharedSecret(node!.publicKey);
    t.equal(toHex(a), toHex(b), `${group.name}: node and noble derive the same secret`);
    t.equal(a.length, group.sharedLength);
  }
});

t.test('fresh MODP private exponents have the configured length and differ', async (t) => {
  for (const p of providers) {
    const one = new KeyExchange(p, 'modp2048');
    const two = new KeyExchange(p, 'modp2048');
    t.not(toHex(one.publicKey), toHex(two.publicKey), `${p.name}: two exchanges, two public values`);
  }
});

t.test('MODP peer values outside 1 < y < p-1 are rejected (RFC 6989 2.1)', async (t) => {
  for (const group of algorithmsOf('dh').filter((g) => g.family === 'modp')) {
    const p = modpPrime(group.name as 'modp1024');
    const bad = [0n, 1n, p - 1n, p].map((y) => bigIntToBytes(y, group.publicLength));
    bad.push(new Uint8Array(group.publicLength).fill(0xff));
    for (const provider of providers) {
      const kex = new KeyExchange(provider, group.name);
      for (const value of bad) {
        t.throws(
          () => kex.computeSharedSecret(value),
          InvalidPublicValueError,
          `${provider.name} ${group.name}`,
        );
      }
      t.throws(() => kex.computeSharedSecret(new Uint8Array(group.publicLength - 1).fill(2)), {
        code: 'INVALID_PUBLIC_VALUE',
        message: /expected/,
      });
    }
  }
});

t.test('ECP peer points off the curve or out of range are rejected', async (t) => {
  for (const name of ['ecp256', 'ecp384'] as const) {
    const { p } = ecpCurveParameters(name)!;
    for (const provider of providers) {
      const peer = new KeyExchange(provider, name).publicKey;
      const half = peer.length / 2;
      const offCurve = Uint8Array.from(peer);
      offCurve[offCurve.length - 1]! ^= 1;
      const tooBig = Uint8Array.from(peer);
      tooBig.set(bigIntToBytes(p, half), 0);
      const kex = new KeyExchange(provider, name);
      t.throws(
        () => kex.computeSharedSecret(offCurve),
        { message: /not on the curve/ },
        `${provider.name} ${name}`,
      );
      t.throws(() => kex.computeSharedSecret(tooBig), { message: /field prime/ });
      t.throws(() => kex.computeSharedSecret(new Uint8Array(peer.length)), InvalidPublicValueError);
    }
  }
});

t.test('X25519 low-order points give an all-zero secret and are rejected (RFC 7748 6.1)', async (t) => {
  // Points of small order on curve25519 (and their non-canonical twins): 0, 1, the order-8
  // points, p-1, p, p+1. Each maps every scalar to the all-zero output.
  const lowOrder = [
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0100000000000000000000000000000000000000000000000000000000000000',
    'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
    '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  ];
  for (const provider of providers) {
    const kex = new KeyExchange(provider, 'curve25519');
    for (const point of lowOrder) {
      t.throws(
        () => kex.computeSharedSecret(fromHex(point)),
        InvalidPublicValueError,
        `${provider.name} ${point.slice(0, 8)}`,
      );
    }
  }
});

t.test('a job that finishes a key pair made before computes the shared secret only', async (t) => {
  // An initiator's second job: recomputing g^x from x would cost a modular exponentiation as
  // dear as g^xy, for a value it sent already.
  const node = createCryptoProvider('node');
  for (const group of ['modp2048', 'ecp256', 'curve25519'] as const) {
    const ours = runDhJob(node, { group });
    const theirs = runDhJob(node, { group, peerPublic: ours.publicKey });
    let reads = 0;
    const counting = {
      ...node,
      keyPair: (g: Parameters<typeof node.keyPair>[0], x?: Uint8Array) => {
        const pair = node.keyPair(g, x);
        return {
          get publicKey() {
            reads++;
            return pair.publicKey;
          },
          privateKey: pair.privateKey,
          sharedSecret: (peer: Uint8Array) => pair.sharedSecret(peer),
        };
      },
    };
    const done = runDhJob(counting, { group, ...madeBefore(ours), peerPublic: theirs.publicKey });
    t.equal(reads, 0, `${group}: our public value is not computed again`);
    t.equal(toHex(done.publicKey), toHex(ours.publicKey), `${group}: it comes back as given`);
    t.equal(toHex(done.sharedSecret!), toHex(theirs.sharedSecret!), `${group}: both sides agree`);
  }
  // And the node provider makes g^x from a given exponent only when it is read.
  const generate = DiffieHellman.prototype.generateKeys;
  let exponentiations = 0;
  DiffieHellman.prototype.generateKeys = function (this: DiffieHellman) {
    exponentiations++;
    return (generate as () => Buffer).call(this);
  } as typeof generate;
  t.teardown(() => {
    DiffieHellman.prototype.generateKeys = generate;
  });
  const fresh = node.keyPair(algorithmsOf('dh').find((a) => a.name === 'modp2048')!);
  t.equal(exponentiations, 1, 'a fresh pair: g^x at once');
  const given = node.keyPair(
    algorithmsOf('dh').find((a) => a.name === 'modp2048')!,
    fresh.privateKey,
  );
  t.equal(exponentiations, 1, 'a given exponent: not yet');
  t.equal(toHex(given.publicKey), toHex(fresh.publicKey), 'read: the same g^x');
  t.equal(exponentiations, 2);
});
