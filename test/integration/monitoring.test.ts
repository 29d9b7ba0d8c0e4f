import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { MonitoringService, type StatsView, type TopView } from '../../src/service/monitoring.js';
import { readDomainStats } from '../../src/drivers/libvirt/domstats.js';
import { MetricsStore } from '../../src/store/metrics.js';
import type { InstanceSample } from '../../src/service/metrics/sample.js';

/**
 * Traffic monitoring against a real guest: HTTP downloads from the host over the test's own
 * isolated network move the guest's counters, the collector turns them into rates and history
 * in metrics.db, and the CLI shows them; a hypervisor that does not answer is reported only.
 */
let env: TestEnv;
let svc: InstanceService;
let name: string;
let ip: string;
const BIG = 256 * 1024;

before(async () => {
  env = await makeTestEnv('mon');
  await new ImageService(env.ctx).buildTiny();
  svc = new InstanceService(env.ctx);
  name = `${env.prefix}-m`;
  // A file worth downloading: guest-to-host bytes then clearly outweigh everything else.
  await svc.create({ name, image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network],
    userData: `#cloud-config\nruncmd:\n  - dd if=/dev/zero of=/var/www/big bs=1024 count=${BIG / 1024}\n` });
  ip = (await svc.waitReady(name, 240_000)).ip;
  await waitFor('/big served', async () => ((await download('/big').catch(() => 0)) === BIG ? true : undefined), 120_000);
});

after(async () => {
  if (env) {
    for (const i of env.ctx.instances.list()) {
      if (i.host === 'local') await svc.delete(i.name).catch(() => undefined);
      else env.ctx.instances.delete(i.name);
    }
    for (const h of env.ctx.hosts.list()) if (h.name !== 'local') env.ctx.hosts.delete(h.name);
    await env.cleanup();
  }
});

async function download(path: string): Promise<number> {
  const res = await fetch(`http://${ip}:8080${path}`, { signal: AbortSignal.timeout(20_000) });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return (await res.arrayBuffer()).byteLength;
}

const mine = (samples: InstanceSample[]) => samples.find((s) => s.instance === name);

test('HTTP traffic moves rx/tx bytes and packets, rates follow the counters, CPU time rises', async () => {
  const mon = new MonitoringService(env.ctx);
  try {
    const c = mon.collector({ intervalMs: 5_000 });
    const s1 = mine((await c.sampleOnce()).samples)!;
    assert.equal(s1.state, 'running');
    assert.equal(s1.host, 'local');
    assert.ok(s1.cpuTimeNs! > 0 && s1.memRssKiB! > 0 && s1.vcpus === 1);

    const requests = 8;
    let received = 0;
    for (let i = 0; i < requests; i++) received += await download('/big');
    const s2 = mine((await c.sampleOnce()).samples)!;

    // libvirt counts from the guest's side: what the host downloaded is what the guest sent (tx).
    const dTx = s2.txBytes! - s1.txBytes!;
    const dRx = s2.rxBytes! - s1.rxBytes!;
    assert.ok(dTx >= received, `guest sent ${dTx} bytes, the host received ${received}`);
    // Not bytes/MTU frames: with virtio offloads one "packet" on the tap can be a 64 KiB segment.
    assert.ok(s2.txPkts! - s1.txPkts! >= requests, 'at least one packet per answer');
    assert.ok(dRx >= requests * 60, `guest received ${dRx} bytes for ${requests} requests`);
    assert.ok(s2.rxPkts! - s1.rxPkts! >= requests, 'at least one packet per request');
    assert.ok(dTx > 10 * dRx, 'downloads: far more sent than received');
    assert.ok(s2.cpuTimeNs! > s1.cpuTimeNs!, 'CPU time rises');

    // The rates are the counters' differences over the interval between the two readings.
    const r = s2.rates!;
    assert.ok(r, 'the second reading has rates');
    const secs = r.intervalMs / 1000;
    const close = (rate: number, delta: number) => Math.abs(rate * secs - delta) <= 1e-6 * Math.max(1, delta);
    assert.ok(close(r.txBps, dTx) && close(r.rxBps, dRx), JSON.stringify(r));
    assert.ok(close(r.txPps, s2.txPkts! - s1.txPkts!) && close(r.rxPps, s2.rxPkts! - s1.rxPkts!));
    assert.ok(close(r.cpuPct / 100 * 1e9, s2.cpuTimeNs! - s1.cpuTimeNs!));
    assert.ok(r.txBps > 0 && r.rxBps > 0 && r.cpuPct > 0);

    // Per NIC as well as summed; the snapshot an exporter renders carries both.
    const [dom] = await readDomainStats(env.ctx.virsh, [name]);
    assert.equal(dom?.nics.length, 1);
    assert.equal(dom!.nics[0]!.txBytes, dom!.net.txBytes);
    const snap = c.snapshot();
    assert.equal(snap.instances.find((m) => m.sample.instance === name)?.nics.length, 1);
    assert.deepEqual(snap.hosts.map((h) => [h.host, h.up]), [['local', true]]);
    assert.match(mon.prometheus(c), new RegExp(`kumo_instance_network_transmit_bytes_total\\{instance="${name}",host="local",interface="[^"]+"\\} \\d+`));
  } finally {
    mon.close();
  }
});

test('the history is in metrics.db, for other processes', () => {
  const store = new MetricsStore(join(env.home, 'metrics.db'));
  try {
    const h = store.history(name, 0);
    assert.ok(h.length >= 2, `${h.length} samples`);
    assert.ok(h.some((s) => s.rates && s.rates.txBps > 0));
  } finally {
    store.close();
  }
});

test('kumo top --once (--json) shows the instance with rates', async () => {
  const r = await env.cli(['top', '--once', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout) as TopView;
  const row = v.instances.find((i) => i.instance === name);
  assert.equal(row?.host, 'local');
  assert.equal(row?.state, 'running');
  assert.ok(row?.rates && row.cpuTimeNs! > 0 && row.txBytes! > 0, JSON.stringify(row));
  assert.deepEqual(v.hosts.map((h) => [h.host, h.up]), [['local', true]]);

  const text = await env.cli(['top', '--once']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /Instance\s+Host\s+State\s+CPU\s+Memory/);
  assert.match(text.stdout, new RegExp(`${name}\\s+local\\s+running\\s+[\\d.]+%\\s+[\\d.]+ MiB / 1\\.0 GiB`));
  assert.match(text.stdout, /hosts: local up/);

  const live = await env.cli(['top', '--count', '2', '--interval', '1', '--json']);
  assert.equal(live.code, 0, live.stderr);
  const lines = live.stdout.trim().split('\n').map((l) => JSON.parse(l) as TopView);
  assert.equal(lines.length, 2);
  assert.ok(lines.every((l) => l.instances.some((i) => i.instance === name)));
});

test('kumo monitor run records rounds and stops by itself with --count', async () => {
  const before = await storeCount();
  const r = await env.cli(['monitor', 'run', '--count', '3', '--interval', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /collecting every 1 s into .*metrics\.db/);
  assert.match(r.stdout, /read 1 instance on 1\/1 hosts/);
  assert.match(r.stdout, /stopped after 3 rounds/);
  assert.ok(await storeCount() >= before + 3);
  // For a log collector: one JSON object a line, each with its time, level, component and fields.
  const j = await env.cli(['monitor', 'run', '--count', '1', '--interval', '1', '--log-format', 'json']);
  assert.equal(j.code, 0, j.stderr);
  const lines = j.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(lines.every((l) => l.level === 'info' && l.component === 'monitor'), j.stdout);
  const read = lines.find((l) => String(l.msg).startsWith('read '));
  assert.deepEqual([read?.instances, read?.hostsUp, lines.at(-1)!.rounds], [1, 1, 1], j.stdout);
  assert.ok(lines.every((l) => !Number.isNaN(Date.parse(String(l.time)))));
});

async function storeCount(): Promise<number> {
  const store = new MetricsStore(join(env.home, 'metrics.db'));
  try {
    return store.span(name).count;
  } finally {
    store.close();
  }
}

test('kumo stats shows the history with a chart; bad input and unknown instances are refused with a fix', async () => {
  await download('/big'); // something to see in the last reading
  const r = await env.cli(['stats', name, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout) as StatsView;
  assert.equal(v.instance, name);
  assert.equal(v.host, 'local');
  assert.ok(v.samples.length >= 5, `${v.samples.length} samples`);
  assert.ok(v.samples.every((s, i) => i === 0 || s.at > v.samples[i - 1]!.at), 'oldest first');
  assert.ok(v.summary.txBps!.max > 0 && v.summary.cpuPct!.max > 0);

  const text = await env.cli(['stats', name, '--since', '1h', '--rows', '4']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`${name} on local: \\d+ readings`));
  assert.match(text.stdout, /Net TX\s+\S+ \S+\/s\s+.*[▁▂▃▄▅▆▇█]/);
  assert.match(text.stdout, /history/);

  for (const [args, code, says] of [
    [['stats', `${env.prefix}-nobody`], 3, /does not exist[\s\S]*fix: see `kumo instance list`/],
    [['stats', name, '--since', 'yesterday'], 2, /not a duration[\s\S]*fix:/],
    [['stats', name, '--since', '2001-01-01T00:00:00Z', '--rows', '0'], 2, /--rows[\s\S]*fix:/],
    [['top', '--interval', '0.1'], 2, /below one second[\s\S]*fix:/],
  ] as const) {
    const res = await env.cli([...args]);
    assert.equal(res.code, code, `${args.join(' ')}: ${res.stderr}`);
    assert.match(res.stderr, says);
  }
});

test('a hypervisor that does not answer is reported, not fatal; its instances show as unknown', async () => {
  // Registered directly: `kumo host add` refuses a host that does not answer.
  const ghost = `${env.prefix}-gh`;
  env.ctx.hosts.insert({ name: ghost, uri: `qemu+unix:///system?socket=${env.home}/no-such-libvirt-sock`, roles: ['hypervisor'],
    shell: { kind: 'local' }, createdAt: new Date().toISOString() });
  const stranded = `${env.prefix}-st`;
  const rec = env.ctx.instances.get(name)!;
  env.ctx.instances.insert({ ...rec, name: stranded, uuid: randomUUID(), host: ghost, nics: [], networks: [], dataDisks: [] });

  const mon = new MonitoringService(env.ctx);
  try {
    const round = await mon.collector({ record: false }).sampleOnce();
    const down = round.hosts.find((h) => h.host === ghost)!;
    assert.equal(down.up, false);
    assert.match(down.error ?? '', /does not answer/);
    assert.ok(mine(round.samples), 'the instance on the host that answers is still read');
    assert.deepEqual(round.unreadable.map((u) => [u.instance, u.state]), [[stranded, 'unknown']]);
  } finally {
    mon.close();
  }

  const r = await env.cli(['top', '--once', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout) as TopView;
  assert.deepEqual(v.hosts.map((h) => [h.host, h.up]).sort(), [['local', true], [ghost, false]].sort());
  assert.ok(v.instances.find((i) => i.instance === name)?.rates);
  const st = v.instances.find((i) => i.instance === stranded);
  assert.equal(st?.state, 'unknown');
  assert.match(st?.note ?? '', /does not answer/);

  const text = await env.cli(['top', '--once']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`${ghost} DOWN`));

  const run = await env.cli(['monitor', 'run', '--count', '1', '--interval', '1']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, new RegExp(`host ${ghost} DOWN`));
  const store = new MetricsStore(join(env.home, 'metrics.db'));
  try {
    assert.equal(store.hosts().find((h) => h.host === ghost)?.up, false, 'recorded as down');
  } finally {
    store.close();
  }
  env.ctx.instances.delete(stranded);
  env.ctx.hosts.delete(ghost);
});
