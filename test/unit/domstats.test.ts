import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDomstats, type DomainStats } from '../../src/drivers/libvirt/domstats.js';
import { ratesBetween, sampleOf } from '../../src/service/metrics/sample.js';
import { Ring } from '../../src/service/metrics/ring.js';
import { MetricsStore } from '../../src/store/metrics.js';
import { Collector, type Inventory } from '../../src/service/metrics/collector.js';
import { renderPrometheus } from '../../src/service/metrics/prometheus.js';
import { parseDuration, parseSince } from '../../src/service/monitoring.js';
import { KumoError } from '../../src/model/errors.js';

/**
 * Captured on the development host (libvirt 9.0, QEMU 7.2, TCG) with
 * `virsh -c qemu:///system domstats --raw --nowait --state --cpu-total --balloon --vcpu --interface --block`:
 * a tiny-image instance that is shut off, and one running with a data disk that had served
 * a 256 KiB file over HTTP once.
 */
const CAPTURED = `Domain: 'kt8654cap-off'
  state.state=5
  state.reason=0
  cpu.time=850000000
  cpu.user=330000000
  cpu.system=520000000
  balloon.current=1048576
  balloon.maximum=1048576
  vcpu.current=1
  vcpu.maximum=1
  block.count=2
  block.0.name=vda
  block.0.path=/tmp/kumo-test-kt8654cap-7bRaro/instances/kt8654cap-off/root.qcow2
  block.0.allocation=200704
  block.0.capacity=10737418240
  block.0.physical=196768
  block.1.name=sda
  block.1.path=/tmp/kumo-test-kt8654cap-7bRaro/instances/kt8654cap-off/seed.iso
  block.1.allocation=376832
  block.1.capacity=376832
  block.1.physical=376832

Domain: 'kt8654cap-a'
  state.state=1
  state.reason=1
  cpu.time=5348266000
  cpu.user=4753657000
  cpu.system=594609000
  cpu.cache.monitor.count=0
  cpu.haltpoll.success.time=0
  cpu.haltpoll.fail.time=0
  balloon.current=1048576
  balloon.maximum=1048576
  balloon.swap_in=0
  balloon.swap_out=0
  balloon.major_fault=43
  balloon.minor_fault=3227
  balloon.unused=931964
  balloon.available=983728
  balloon.usable=869584
  balloon.last-update=1795836412
  balloon.disk_caches=7564
  balloon.hugetlb_pgalloc=0
  balloon.hugetlb_pgfail=0
  balloon.rss=330368
  vcpu.current=1
  vcpu.maximum=1
  vcpu.0.state=1
  vcpu.0.time=4810000000
  vcpu.0.wait=0
  vcpu.0.delay=1198798255
  net.count=1
  net.0.name=vnet7
  net.0.rx.bytes=3395
  net.0.rx.pkts=36
  net.0.rx.errs=0
  net.0.rx.drop=0
  net.0.tx.bytes=265205
  net.0.tx.pkts=30
  net.0.tx.errs=0
  net.0.tx.drop=0
  block.count=3
  block.0.name=vda
  block.0.path=/tmp/kumo-test-kt8654cap-7bRaro/instances/kt8654cap-a/root.qcow2
  block.0.backingIndex=3
  block.0.rd.reqs=302
  block.0.rd.bytes=8004608
  block.0.rd.times=152364721
  block.0.wr.reqs=67
  block.0.wr.bytes=737280
  block.0.wr.times=250235214
  block.0.fl.reqs=7
  block.0.fl.times=6337024
  block.0.allocation=2162688
  block.0.capacity=10737418240
  block.0.physical=2109440
  block.1.name=vdb
  block.1.path=/tmp/kumo-test-kt8654cap-7bRaro/instances/kt8654cap-a/data1.qcow2
  block.1.backingIndex=2
  block.1.rd.reqs=6
  block.1.rd.bytes=49152
  block.1.rd.times=226927
  block.1.wr.reqs=0
  block.1.wr.bytes=0
  block.1.wr.times=0
  block.1.fl.reqs=0
  block.1.fl.times=0
  block.1.allocation=0
  block.1.capacity=1073741824
  block.1.physical=204800
  block.2.name=sda
  block.2.path=/tmp/kumo-test-kt8654cap-7bRaro/instances/kt8654cap-a/seed.iso
  block.2.backingIndex=1
  block.2.rd.reqs=19
  block.2.rd.bytes=37044
  block.2.rd.times=4563155
  block.2.wr.reqs=0
  block.2.wr.bytes=0
  block.2.wr.times=0
  block.2.fl.reqs=0
  block.2.fl.times=0
  block.2.allocation=0
  block.2.capacity=376832
  block.2.physical=376832

`;

const byName = (list: DomainStats[], name: string) => list.find((d) => d.name === name)!;

test('domstats: one record per domain, with state, CPU, vCPUs and memory', () => {
  const all = parseDomstats(CAPTURED);
  assert.deepEqual(all.map((d) => [d.name, d.state]), [['kt8654cap-off', 'shut off'], ['kt8654cap-a', 'running']]);
  const a = byName(all, 'kt8654cap-a');
  assert.equal(a.cpuTimeNs, 5348266000);
  assert.equal(a.cpuUserNs, 4753657000);
  assert.equal(a.cpuSystemNs, 594609000);
  assert.equal(a.vcpus, 1);
  assert.deepEqual(a.memory, { currentKiB: 1048576, maximumKiB: 1048576, rssKiB: 330368, availableKiB: 983728, unusedKiB: 931964, usableKiB: 869584 });
});

test('domstats: block counters per disk and summed over disks (the seed CD-ROM too)', () => {
  const a = byName(parseDomstats(CAPTURED), 'kt8654cap-a');
  assert.deepEqual(a.disks.map((d) => d.name), ['vda', 'vdb', 'sda']);
  assert.equal(a.disks[0]!.path, '/tmp/kumo-test-kt8654cap-7bRaro/instances/kt8654cap-a/root.qcow2');
  assert.deepEqual(a.disks[1], { name: 'vdb', path: '/tmp/kumo-test-kt8654cap-7bRaro/instances/kt8654cap-a/data1.qcow2', rdBytes: 49152, rdReqs: 6, wrBytes: 0, wrReqs: 0 });
  assert.deepEqual(a.block, { rdBytes: 8004608 + 49152 + 37044, rdReqs: 302 + 6 + 19, wrBytes: 737280, wrReqs: 67 });
});

test('domstats: network counters per NIC and summed over NICs', () => {
  const a = byName(parseDomstats(CAPTURED), 'kt8654cap-a');
  const vnet7 = { name: 'vnet7', rxBytes: 3395, rxPkts: 36, rxErrs: 0, rxDrop: 0, txBytes: 265205, txPkts: 30, txErrs: 0, txDrop: 0 };
  assert.deepEqual(a.nics, [vnet7]);
  const { name: _, ...totals } = vnet7;
  assert.deepEqual(a.net, totals);
  // A second NIC is added to the totals, and kept apart in nics.
  const two = parseDomstats(CAPTURED.replace('net.count=1', 'net.count=2') + [
    '  net.1.name=vnet9', '  net.1.rx.bytes=5', '  net.1.rx.pkts=1', '  net.1.rx.errs=2', '  net.1.rx.drop=3',
    '  net.1.tx.bytes=7', '  net.1.tx.pkts=1', '  net.1.tx.errs=0', '  net.1.tx.drop=4', ''].join('\n'));
  const b = byName(two, 'kt8654cap-a');
  assert.deepEqual(b.nics.map((n) => n.name), ['vnet7', 'vnet9']);
  assert.deepEqual(b.net, { rxBytes: 3400, rxPkts: 37, rxErrs: 2, rxDrop: 3, txBytes: 265212, txPkts: 31, txErrs: 0, txDrop: 4 });
});

test('domstats: a shut-off domain has devices but no counters, and its sample none either', () => {
  const off = byName(parseDomstats(CAPTURED), 'kt8654cap-off');
  assert.deepEqual(off.nics, []);
  assert.deepEqual(off.disks.map((d) => [d.name, d.rdBytes, d.wrBytes]), [['vda', 0, 0], ['sda', 0, 0]]);
  // libvirt reports a stale cpu.time for it: kumo does not turn that into a reading.
  const s = sampleOf('kt8654cap-off', 'local', 1000, off);
  assert.deepEqual(s, { instance: 'kt8654cap-off', host: 'local', at: 1000, state: 'shut off' });
});

test('domstats: empty output, odd names and unknown fields', () => {
  assert.deepEqual(parseDomstats(''), []);
  assert.deepEqual(parseDomstats('\n'), []);
  const [d] = parseDomstats("Domain: 'it's'\n  state.state=3\n  future.field=x\n  cpu.time=oops\n");
  assert.equal(d!.name, "it's");
  assert.equal(d!.state, 'paused');
  assert.equal(d!.cpuTimeNs, undefined);
  assert.deepEqual(d!.net, { rxBytes: 0, rxPkts: 0, rxErrs: 0, rxDrop: 0, txBytes: 0, txPkts: 0, txErrs: 0, txDrop: 0 });
});

/** The captured text with counters moved on, as a later reading of the same process would have them. */
function later(text: string, changes: Record<string, number>): string {
  let out = text;
  for (const [key, delta] of Object.entries(changes)) {
    out = out.replace(new RegExp(`(Domain: 'kt8654cap-a'[\\s\\S]*?\\n  ${key.replace(/\./g, '\\.')}=)(\\d+)`), (_, head: string, v: string) => `${head}${Number(v) + delta}`);
  }
  return out;
}

test('rates from two readings: CPU % of one vCPU, bytes/s, packets/s, requests/s', () => {
  const a1 = byName(parseDomstats(CAPTURED), 'kt8654cap-a');
  const a2 = byName(parseDomstats(later(CAPTURED, {
    'cpu.time': 1_000_000_000, 'net.0.rx.bytes': 20_000, 'net.0.rx.pkts': 200, 'net.0.tx.bytes': 4_000_000, 'net.0.tx.pkts': 400,
    'block.0.wr.bytes': 1_048_576, 'block.0.wr.reqs': 8, 'block.1.rd.bytes': 40_960, 'block.1.rd.reqs': 4,
  })), 'kt8654cap-a');
  const s1 = sampleOf('kt8654cap-a', 'local', 10_000, a1);
  const s2 = sampleOf('kt8654cap-a', 'local', 14_000, a2);
  assert.equal(s1.memRssKiB, 330368);
  assert.equal(s1.memUsedKiB, 983728 - 869584);
  const r = ratesBetween(s1, s2)!;
  assert.deepEqual(r, { intervalMs: 4000, cpuPct: 25, rdBps: 10_240, wrBps: 262_144, rdIops: 1, wrIops: 2, rxBps: 5_000, txBps: 1_000_000, rxPps: 50, txPps: 100 });
});

test('rates: none across a restart (counters went down), a move to another host, or a stopped domain', () => {
  const a = byName(parseDomstats(CAPTURED), 'kt8654cap-a');
  const s1 = sampleOf('kt8654cap-a', 'local', 10_000, a);
  const restarted = sampleOf('kt8654cap-a', 'local', 15_000, byName(parseDomstats(later(CAPTURED, { 'cpu.time': -5_000_000_000 })), 'kt8654cap-a'));
  assert.equal(ratesBetween(s1, restarted), undefined);
  assert.equal(ratesBetween(s1, { ...s1, at: 15_000, host: 'kvm2' }), undefined);
  assert.equal(ratesBetween(s1, { instance: s1.instance, host: 'local', at: 15_000, state: 'shut off' }), undefined);
  assert.equal(ratesBetween(s1, s1), undefined, 'no time passed');
});

test('ring buffer keeps the newest items, oldest first', () => {
  const r = new Ring<number>(3);
  assert.deepEqual(r.toArray(), []);
  assert.equal(r.last(), undefined);
  for (let i = 1; i <= 5; i++) r.push(i);
  assert.deepEqual(r.toArray(), [3, 4, 5]);
  assert.equal(r.size, 3);
  assert.equal(r.last(), 5);
  assert.throws(() => new Ring(0), RangeError);
});

/** Two hosts: "local" has the captured domains, "kvm2" never answers. */
function fakeInventory(text: () => string): Inventory {
  return {
    hosts: () => [
      { name: 'local', read: async () => parseDomstats(text()) },
      { name: 'kvm2', read: async () => { throw new KumoError('LIBVIRT_ERROR', 'libvirt at qemu+ssh://kvm2/system does not answer'); } },
    ],
    instances: () => [
      { name: 'kt8654cap-a', host: 'local' }, { name: 'kt8654cap-off', host: 'local' },
      { name: 'web9', host: 'kvm2' }, { name: 'gone', host: 'local' },
    ],
  };
}

test('collector: rates from its second round, a down host reported and not fatal, history bounded, persisted', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-metrics-'));
  const store = new MetricsStore(join(dir, 'metrics.db'), 3600_000);
  try {
    let text = CAPTURED;
    let clock = 1_000_000;
    const c = new Collector(fakeInventory(() => text), { intervalMs: 5000, historySize: 2, store, now: () => clock });
    const r1 = await c.sampleOnce();
    assert.deepEqual(r1.hosts.map((h) => [h.host, h.up]), [['local', true], ['kvm2', false]]);
    assert.match(r1.hosts[1]!.error!, /does not answer/);
    assert.deepEqual(r1.unreadable.map((u) => [u.instance, u.state]), [['web9', 'unknown'], ['gone', 'missing']]);
    assert.equal(r1.samples.find((s) => s.instance === 'kt8654cap-a')?.rates, undefined);

    for (let i = 0; i < 3; i++) {
      clock += 5000;
      text = later(text, { 'cpu.time': 2_500_000_000, 'net.0.tx.bytes': 50_000 });
      await c.sampleOnce();
    }
    const snap = c.snapshot();
    const a = snap.instances.find((m) => m.sample.instance === 'kt8654cap-a')!;
    assert.equal(a.sample.rates?.cpuPct, 50);
    assert.equal(a.sample.rates?.txBps, 10_000);
    assert.deepEqual(a.nics.map((n) => n.name), ['vnet7']);
    assert.equal(snap.rounds, 4);
    assert.equal(c.history('kt8654cap-a').length, 2, 'the ring keeps historySize readings');

    // What another process reads back from metrics.db: every round, rates included.
    const h = store.history('kt8654cap-a', 0);
    assert.equal(h.length, 4);
    assert.deepEqual(h[3], a.sample);
    assert.deepEqual(store.latest().map((s) => s.instance), ['kt8654cap-a', 'kt8654cap-off']);
    assert.deepEqual(store.hosts().map((x) => [x.host, x.up]), [['kvm2', false], ['local', true]]);
    // Retention: readings older than an hour go.
    assert.equal(store.prune(clock + 3600_000 - 7_000), 4, 'two old readings of each instance');
    assert.equal(store.history('kt8654cap-a', 0).length, 2);

    // A fresh collector primed with the stored readings has rates from its first round.
    const fresh = new Collector(fakeInventory(() => text), { now: () => clock + 5000 });
    fresh.prime(store.latest());
    const r = await fresh.sampleOnce();
    assert.equal(r.samples.find((s) => s.instance === 'kt8654cap-a')?.rates?.cpuPct, 0);

    const prom = renderPrometheus(snap);
    assert.match(prom, /^# HELP kumo_host_up /m);
    assert.match(prom, /^kumo_host_up\{host="kvm2"\} 0$/m);
    assert.match(prom, /^kumo_instance_cpu_seconds_total\{instance="kt8654cap-a",host="local"\} 12\.848266$/m);
    assert.match(prom, /^kumo_instance_network_transmit_bytes_total\{instance="kt8654cap-a",host="local",interface="vnet7"\} 415205$/m);
    assert.match(prom, /^kumo_instance_info\{instance="kt8654cap-off",host="local",state="shut off"\} 1$/m);
    assert.doesNotMatch(prom, /kumo_instance_disk_read_bytes_total\{instance="kt8654cap-off"/);
  } finally {
    store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('durations and --since', () => {
  assert.equal(parseDuration('--since', '90s'), 90_000);
  assert.equal(parseDuration('--since', '10m'), 600_000);
  assert.equal(parseDuration('--retention', '1.5h'), 5_400_000);
  assert.equal(parseDuration('--interval', '2'), 2_000);
  assert.equal(parseSince('1d', 100_000_000), 100_000_000 - 86_400_000);
  assert.equal(parseSince('2024-05-01T10:00:00Z'), Date.parse('2024-05-01T10:00:00Z'));
  for (const bad of ['', 'ten', '-5m', '0', '5w']) {
    assert.throws(() => parseSince(bad), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && e.fix !== undefined, bad);
  }
});
