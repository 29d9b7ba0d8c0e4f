import test from 'node:test';
import assert from 'node:assert/strict';
import { KumoError } from '../../src/model/errors.js';
import { type NfsExport, buildGaneshaConfig } from '../../src/drivers/daemons/nfs-ganesha.js';

const share: NfsExport = { id: 1, path: '/srv/kumo/shares/www', pseudo: '/www', readOnly: false, clients: ['10.5.2.0/24'] };

test('ganesha exports name their client networks as CIDRs', () => {
  const conf = buildGaneshaConfig([{ ...share, clients: ['10.5.2.0/24', '192.168.222.128/25'] }]);
  assert.match(conf, /CLIENT \{ Clients = 10\.5\.2\.0\/24, 192\.168\.222\.128\/25; Access_Type = RW; \}/);
});

test('ganesha client networks go through the shared CIDR parser: 999.1.1.1/99 and friends are refused', () => {
  for (const bad of ['999.1.1.1/99', '10.5.2.0/33', '10.5.2.256/24', '10.05.2.0/24', '10.5.2.7/24', '10.5.2.0', '']) {
    assert.throws(() => buildGaneshaConfig([{ ...share, clients: [bad] }]),
      (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && /needs client networks as CIDRs/.test(e.message), bad);
  }
  assert.throws(() => buildGaneshaConfig([{ ...share, clients: [] }]), /got none/);
});
