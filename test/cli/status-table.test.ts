import t from 'tap';
import { duration, statusTable } from '../../src/cli/status-table.js';
import type { ConnectionStatus } from '../../src/core/status.js';

const NOW = 1_800_000_000;

const active: ConnectionStatus = {
  name: 'branch-office',
  peer: '198.51.100.7',
  status: 'Active',
  ikeSas: [
    {
      id: 3,
      version: 1,
      spiI: '0011223344556677',
      spiR: '8899aabbccddeeff',
      state: 'ESTABLISHED',
      role: 'initiator',
      local: '203.0.113.5:4500',
      remote: '198.51.100.7:4500',
      localId: 'hq.example.net',
      remoteId: 'branch.example.net',
      algorithms: 'aes256-sha256-modp2048',
      natDetected: true,
      nat: { local: true, remote: false },
      establishedAt: NOW - 312,
      rekeyAt: NOW + 10_140,
      expiresAt: NOW + 10_488,
    },
  ],
  childSas: [
    {
      id: 4,
      ikeSaId: 3,
      protocol: 'esp',
      spiIn: 'c0a1b2c3',
      spiOut: '8f00aa11',
      mode: 'tunnel',
      encapsulation: true,
      localTs: ['10.0.0.0/16'],
      remoteTs: ['172.16.5.0/24'],
      algorithms: 'aes256-sha256',
      lifetime: { seconds: 3600 },
      installedAt: NOW - 310,
      rekeyAt: NOW + 2950,
      expiresAt: NOW + 3290,
      traffic: { bytesIn: 1_258_291, packetsIn: 1043, bytesOut: 900, packetsOut: 10 },
    },
  ],
};

t.test('one readable block per connection, times relative to now', async (t) => {
  const down: ConnectionStatus = {
    name: 'l2tp',
    peer: 'any',
    status: 'Error',
    error: 'NO_PROPOSAL_CHOSEN',
    ikeSas: [],
    childSas: [],
  };
  t.equal(
    statusTable([active, down], NOW),
    [
      'branch-office: Active, peer 198.51.100.7',
      '  IKEv1 SA #3 ESTABLISHED (initiator) 203.0.113.5:4500 <-> 198.51.100.7:4500, we are behind NAT',
      '    SPIs 0011223344556677_i 8899aabbccddeeff_r, hq.example.net <-> branch.example.net',
      '    aes256-sha256-modp2048, age 5m12s, rekey in 2h49m, expires in 2h54m',
      '    child SA #4 tunnel, ESP in UDP, SPIs c0a1b2c3_i 8f00aa11_o, aes256-sha256',
      '      10.0.0.0/16 === 172.16.5.0/24',
      '      1.2 MiB in (1043 packets), 900 B out (10 packets), age 5m10s, rekey in 49m10s, expires in 54m50s',
      'l2tp: Error, peer any  NO_PROPOSAL_CHOSEN',
      '',
    ].join('\n'),
  );
  const uncounted: { traffic?: unknown } = { ...active.childSas[0]! };
  delete uncounted.traffic;
  t.match(
    statusTable([{ ...active, childSas: [uncounted as ConnectionStatus['childSas'][number]] }], NOW),
    /traffic not counted by this kernel backend/,
  );
  t.equal(statusTable([], NOW), 'no connections configured\n');
});

t.test('durations', async (t) => {
  t.same([0, 59, 60, 245, 3600, 10_799, 86_400, 270_000, -5].map(duration), [
    '0s',
    '59s',
    '1m00s',
    '4m05s',
    '1h00m',
    '2h59m',
    '1d00h',
    '3d03h',
    '0s',
  ]);
});

t.test('child SAs under the IKE SA that negotiated them; one of another IKE SA names it', async (t) => {
  const [sa] = active.ikeSas;
  const [child] = active.childSas;
  const status: ConnectionStatus = {
    ...active,
    ikeSas: [sa!, { ...sa!, id: 7, remote: '198.51.100.8:4500' }],
    childSas: [
      { ...child!, id: 8, ikeSaId: 7, spiIn: 'c0000008' },
      { ...child!, id: 9, ikeSaId: 2, spiIn: 'c0000009' },
      { ...child!, id: 4, ikeSaId: 3 },
    ],
  };
  const heads = statusTable([status], NOW)
    .split('\n')
    .filter((line) => /^\s*(IKEv1 SA|child SA) #/.test(line))
    .map((line) => line.replace(/^(\s*\S+ SA #\d+( \(IKE SA #\d+\))?).*/, '$1'));
  t.same(heads, [
    '  IKEv1 SA #3',
    '    child SA #4',
    '  IKEv1 SA #7',
    '    child SA #8',
    '  child SA #9 (IKE SA #2)',
  ]);
});
