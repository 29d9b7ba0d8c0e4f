import test from 'node:test';
import assert from 'node:assert/strict';
import {
  broadcast, contains, formatCidr, formatIp, isCidr, isIp, overlaps, parseCidr, parseIp, readCidr, readIpv4, resolveInSubnet,
} from '../../src/model/checks.js';
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

test('one reader for addresses and CIDRs says what is wrong', () => {
  assert.deepEqual(readIpv4('10.5.1.7'), { ok: true, value: 0x0a050107 });
  assert.deepEqual(readIpv4('10.5.1.010'), { ok: false, fault: 'leading-zero' });
  assert.deepEqual(readIpv4('10.5.1.256'), { ok: false, fault: 'octet-range' });
  assert.deepEqual(readIpv4(' 10.5.1.7'), { ok: false, fault: 'syntax' });
  assert.deepEqual(readCidr('10.5.1.0/24'), { ok: true, network: 0x0a050100, prefix: 24 });
  assert.deepEqual(readCidr('10.5.1.7', { bare: true }), { ok: true, network: 0x0a050107, prefix: 32 });
  assert.deepEqual(readCidr('0.0.0.0/0'), { ok: true, network: 0, prefix: 0 });
  for (const [text, fault] of [
    ['10.5.1.7', 'shape'], ['x/24', 'shape'], ['10.5.1.0/', 'shape'], ['10.5.1.0/24/1', 'shape'],
    ['10.5.1/24', 'syntax'], ['10.05.1.0/24', 'leading-zero'], ['999.1.1.1/99', 'octet-range'],
    ['10.5.1.0/33', 'prefix-range'], ['10.5.1.7/24', 'host-bits'],
  ] as const) {
    const r = readCidr(text);
    assert.equal(r.ok ? 'ok' : r.fault, fault, text);
  }
});

test('the schemas\' predicates accept what the parsers accept', () => {
  assert.ok(isIp('10.5.2.11') && isIp(' 10.5.2.11 ') && !isIp('10.5.2.011'));
  assert.ok(isCidr('10.5.2.0/24') && !isCidr('10.5.2.0/31') && !isCidr('10.5.2.1/24'));
});
