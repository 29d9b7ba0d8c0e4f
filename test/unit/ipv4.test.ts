import test from 'node:test';
import assert from 'node:assert/strict';
import { broadcast, contains, formatCidr, formatIp, overlaps, parseCidr, parseIp, resolveInSubnet } from '../../src/model/ipv4.js';
import { KumoError } from '../../src/model/errors.js';

test('CIDR parsing, containment and overlap', () => {
  const s = parseCidr('192.168.222.0/24');
  assert.equal(formatCidr(s), '192.168.222.0/24');
  assert.equal(formatIp(broadcast(s)), '192.168.222.255');
  assert.ok(contains(s, parseIp('192.168.222.7')));
  assert.ok(!contains(s, parseIp('192.168.223.7')));
  assert.ok(overlaps(s, parseCidr('192.168.0.0/16')));
  assert.ok(overlaps(parseCidr('192.168.0.0/16'), s));
  assert.ok(!overlaps(s, parseCidr('192.168.223.0/24')));
  assert.equal(formatIp(resolveInSubnet(s, '.1', 'gateway')), '192.168.222.1');
  assert.equal(formatIp(resolveInSubnet(parseCidr('10.5.0.0/16'), '.1.9', 'gateway')), '10.5.1.9');
  assert.equal(formatIp(resolveInSubnet(s, '192.168.222.254', 'gateway')), '192.168.222.254');
});

test('bad CIDRs and addresses are refused with the fix', () => {
  for (const [text, says] of [
    ['192.168.222.1/24', /host bits set[\s\S]*192\.168\.222\.0\/24/],
    ['192.168.222.0', /not a CIDR/],
    ['192.168.300.0/24', /not an IPv4 address/],
    ['10.0.0.0/4', /out of range/],
    ['10.0.0.0/31', /out of range/],
    ['x/24', /not a CIDR/],
  ] as const) {
    assert.throws(() => parseCidr(text), (e: unknown) => e instanceof KumoError && says.test(`${e.message} ${e.fix ?? ''}`), text);
  }
});
