#!/usr/bin/env node
/**
 * The API list answered from libvirt's events against the old path, side by side in one run, on
 * a private libvirtd (never the machine's) holding N real defined domains that N seeded instance
 * records point at: two `kumo serve` on the same KUMO_HOME, one as shipped (protocol connection,
 * states from the followed events) and one with KUMO_LIBVIRT_PROTOCOL=0 (every list spawns virsh,
 * as before); each loaded with C keep-alive connections in turn. Also `kumo instance list` both
 * ways, and the delay from a `virsh destroy` (started) to the API showing "shut off". Every
 * record has a NIC on a real libvirt network of that libvirtd (isolated, in the daemon's own
 * network namespace) whose DHCP lease table holds a lease per NIC, so each list's lease read
 * (over the protocol, or `virsh net-dhcp-leases` on the old path) answers N leases.
 *
 *   node dist/bench/api-events.js [--counts 10,100,1000] [--duration S] [--connections 8] [--event-rounds R] [--json FILE]
 *
 * Everything lives in one per-run folder removed at the end (also on Ctrl+C); the servers and the
 * private libvirtd are stopped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { startLibvirtd, stopLibvirtd } from '../src/drivers/daemons/libvirtd/namespace.js';
import { LibvirtConnection } from '../src/drivers/libvirt/rpc/connection.js';
import { defineDomain } from '../src/drivers/libvirt/rpc/domains.js';
import { openContext } from '../src/service/context.js';
import { benchFolder, cleanup, CLI, fmt, load1, log, machineFacts, median, now, run, scriptOptions, sleep, undo } from './common.js';

interface Options { counts: number[]; durationS: number; connections: number; eventRounds: number; json?: string }

function usage(): string {
  return `usage: node dist/bench/api-events.js [options]
  --counts LIST        instance counts, comma-separated, each 1-20000 (default 10,100,1000; run in ascending order)
  --duration S         seconds of load per server and count (default 8)
  --connections C      keep-alive connections of the load (default 8)
  --event-rounds R     virsh destroy → "shut off" delays measured (default 10)
  --json FILE          also write every figure to FILE`;
}

const options = (): Options => scriptOptions({
  counts: { kind: 'wholes', min: 1, max: 20_000, sort: true, default: [10, 100, 1000] },
  duration: { kind: 'whole', min: 1, max: 600, default: 8 },
  connections: { kind: 'whole', min: 1, max: 256, default: 8 },
  'event-rounds': { kind: 'whole', min: 1, max: 100, default: 10 },
  json: { kind: 'text' },
}, usage(), (v) => ({ counts: v.counts, durationS: v.duration, connections: v.connections, eventRounds: v['event-rounds'], json: v.json }));

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil((p / 100) * xs.length) - 1)] ?? NaN;
const idleXml = (name: string, uuid: string) => `<domain type='qemu'><name>${name}</name><uuid>${uuid}</uuid><memory unit='MiB'>16</memory>` +
  `<os><type arch='x86_64'>hvm</type></os><features><acpi/></features><devices><disk type='file' device='disk'>` +
  `<source file='/nonexistent/${name}.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>`;
/** No disk: QEMU sits in its firmware, a guest that really runs. */
const runnerXml = (name: string, uuid: string) => `<domain type='qemu'><name>${name}</name><uuid>${uuid}</uuid><memory unit='MiB'>32</memory>` +
  `<os><type arch='x86_64'>hvm</type></os><features><acpi/></features><devices></devices></domain>`;

/**
 * An isolated libvirt network with DHCP in the private libvirtd (its own network namespace: no
 * bridge or firewall rule on the machine's), destroyed before the daemon stops (its dnsmasq would outlive it).
 */
async function startNetwork(uri: string, dir: string, name: string, bridge: string): Promise<void> {
  const file = join(dir, 'network.xml');
  await writeFile(file, `<network><name>${name}</name><bridge name='${bridge}'/><ip address='10.213.0.1' netmask='255.255.0.0'>` +
    `<dhcp><range start='10.213.0.2' end='10.213.254.254'/></dhcp></ip></network>`);
  await run('virsh', ['-q', '-c', uri, 'net-define', file]);
  await run('virsh', ['-q', '-c', uri, 'net-start', name]);
  undo.push({ what: `stop network ${name}`, fn: () => run('virsh', ['-q', '-c', uri, 'net-destroy', name]) });
}

/**
 * A lease per MAC in libvirt's own lease table of the network (the status file its dnsmasq's
 * helper keeps, which libvirt reads on every lease question), valid for a day: as if every
 * guest had booted and asked for an address.
 */
async function writeLeases(stateDir: string, bridge: string, macs: string[]): Promise<void> {
  const expiry = Math.floor(Date.now() / 1000) + 86_400;
  const leases = macs.map((mac, i) => ({ 'ip-address': `10.213.${Math.floor((i + 2) / 250)}.${((i + 2) % 250) + 2}`, 'mac-address': mac, hostname: `g${i}`, 'expiry-time': expiry }));
  await writeFile(join(stateDir, 'lib', 'dnsmasq', `${bridge}.status`), JSON.stringify(leases, null, 2));
}

const randomMac = () => `52:54:00:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;

/** `kumo serve` on an ephemeral port; the admin token is the first server's (same store). */
function serve(env: NodeJS.ProcessEnv, token?: string): Promise<{ child: ChildProcess; base: string; token: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--monitor-interval', '0', '--log-level', 'warn'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    undo.push({ what: `stop kumo serve ${child.pid}`, fn: async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await sleep(500); child.kill('SIGKILL'); } } });
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const base = /kumo API on (http:\/\/[^\s/]+)/.exec(out)?.[1];
      const file = /admin token written to (\S+)/.exec(out)?.[1];
      const t = token ?? /admin token[^:]*: (kumo_\S+)/.exec(out)?.[1] ?? (file ? readFileSync(file, 'utf8').trim() : undefined);
      if (base && t) resolve({ child, base, token: t });
    });
    child.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
    child.once('exit', (code) => reject(new Error(`kumo serve exited ${code}: ${err}`)));
  });
}

/** C keep-alive connections in a closed loop on GET path for D seconds: answer latencies in ms. */
async function load(base: string, path: string, token: string, c: number, durationS: number): Promise<{ p50: number; p99: number; rps: number; errors: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: c });
  const url = new URL(path, base);
  const lat: number[] = [];
  let errors = 0;
  const one = () => new Promise<void>((resolve) => {
    const t0 = now();
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => { if (res.statusCode === 200) lat.push(now() - t0); else errors++; resolve(); });
    });
    req.on('error', () => { errors++; resolve(); });
    req.end();
  });
  const end = now() + durationS * 1000;
  await Promise.all(Array.from({ length: c }, async () => { while (now() < end) await one(); }));
  agent.destroy();
  return { p50: pct(lat, 50), p99: pct(lat, 99), rps: lat.length / durationS, errors };
}

async function getJson(base: string, path: string, token: string): Promise<{ state: string; stateSource: string }> {
  return (await fetch(base + path, { headers: { authorization: `Bearer ${token}` } })).json() as Promise<{ state: string; stateSource: string }>;
}

async function wallMs(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const t0 = now();
  await run(process.execPath, [CLI, ...args], { env });
  return now() - t0;
}

/** virsh destroy (timed from its start) until the API's show says shut off; then start again. */
async function eventDelays(uri: string, base: string, token: string, name: string, rounds: number): Promise<{ apiMs: number[]; virshMs: number[] }> {
  const apiMs: number[] = [];
  const virshMs: number[] = [];
  const until = async (state: string) => { while ((await getJson(base, `/api/v1/instances/${name}`, token)).state !== state) await sleep(2); };
  for (let i = 0; i < rounds; i++) {
    await until('running');
    const t0 = now();
    const destroy = run('virsh', ['-q', '-c', uri, 'destroy', name]).then(() => virshMs.push(now() - t0));
    await until('shut off');
    apiMs.push(now() - t0);
    await destroy;
    await run('virsh', ['-q', '-c', uri, 'start', name]);
  }
  return { apiMs, virshMs };
}

async function main(): Promise<void> {
  const o = options();
  const { prefix, dir, home } = await benchFolder('ke', '/var/tmp');
  const stateDir = join(dir, 'libvirtd');
  const netns = `${prefix}-ns`;
  await run('ip', ['netns', 'add', netns]);
  undo.push({ what: `remove network namespace ${netns}`, fn: () => run('ip', ['netns', 'del', netns]) });
  undo.push({ what: 'stop the private libvirtd', fn: () => stopLibvirtd(stateDir) });
  const lv = await startLibvirtd({ name: `${prefix}-lv`, stateDir, maskKvm: true, netns });
  const network = `${prefix}-lan`;
  const bridge = `${prefix}br`;
  await startNetwork(lv.uri, dir, network, bridge);
  const macs: string[] = [];
  const rpc = new LibvirtConnection(lv.uri, { callTimeoutMs: 120_000 });
  undo.push({ what: 'close the RPC connection', fn: () => rpc.close() });
  const ctx = openContext({ home, libvirtUri: lv.uri }); // registers "local" as the private libvirtd
  ctx.images.upsert({ name: 'tiny', os: 'bench stand-in', disk: join(home, 'tiny.qcow2'), format: 'qcow2', virtualSizeBytes: 1 << 26, source: 'bench', createdAt: new Date().toISOString() });
  const record = (name: string, uuid: string) => {
    const mac = randomMac();
    macs.push(mac);
    ctx.instances.insert({ name, uuid, host: 'local', image: 'tiny', vcpus: 1, ramMiB: 16, diskGiB: 1, networks: [network], nics: [{ mac, network }], dataDisks: [], sshKeys: [], createdAt: new Date().toISOString(), project: 'default' });
  };
  const runner = `${prefix}-run`;
  const runnerUuid = randomUUID();
  await defineDomain(rpc, runnerXml(runner, runnerUuid));
  record(runner, runnerUuid);
  await run('virsh', ['-q', '-c', lv.uri, 'start', runner]);
  undo.push({ what: 'end the running guest', fn: () => run('virsh', ['-q', '-c', lv.uri, 'destroy', runner]) });
  const env = { ...process.env, KUMO_HOME: home, KUMO_LIBVIRT_URI: lv.uri, LANG: 'C.UTF-8', LC_ALL: '' };
  const oldEnv = { ...env, KUMO_LIBVIRT_PROTOCOL: '0' };
  const fresh = await serve(env);
  const old = await serve(oldEnv, fresh.token);
  const rows: string[] = [];
  const results: Record<number, unknown> = {};
  let defined = 1;
  for (const n of o.counts) {
    while (defined < n) {
      const name = `${prefix}-d${String(defined).padStart(5, '0')}`;
      const uuid = randomUUID();
      await defineDomain(rpc, idleXml(name, uuid));
      record(name, uuid);
      defined++;
    }
    await writeLeases(stateDir, bridge, macs);
    // Warm both (the new one lists once and follows from then on).
    for (const s of [fresh, old]) await load(s.base, '/api/v1/instances', s.token, 2, 2);
    // Both ways must show the leases (else the figures would leave their read out).
    for (const s of [fresh, old]) {
      const listed = await (await fetch(`${s.base}/api/v1/instances`, { headers: { authorization: `Bearer ${s.token}` } })).json() as { nics: { ipv4?: string }[] }[];
      const addressed = listed.filter((i) => i.nics[0]?.ipv4).length;
      if (addressed < n - 1) throw new Error(`${s === fresh ? 'protocol' : 'virsh'} server lists ${addressed} addresses for ${n} instances: the lease read is not in the figures`);
    }
    const a = await load(fresh.base, '/api/v1/instances', fresh.token, o.connections, o.durationS);
    const b = await load(old.base, '/api/v1/instances', old.token, o.connections, o.durationS);
    // `kumo instance list` both ways, alternating, 3 runs each: medians.
    const cliNewRuns: number[] = [];
    const cliOldRuns: number[] = [];
    for (let i = 0; i < 3; i++) {
      cliNewRuns.push(await wallMs(['instance', 'list'], env));
      cliOldRuns.push(await wallMs(['instance', 'list'], oldEnv));
    }
    const cliNew = median(cliNewRuns)!;
    const cliOld = median(cliOldRuns)!;
    results[n] = { events: a, virsh: b, cliNewMs: cliNew, cliOldMs: cliOld, load: load1() };
    rows.push(`| ${n} | ${fmt(a.p50)} | ${fmt(a.p99)} | ${fmt(b.p50)} | ${fmt(b.p99)} | ${fmt(b.p99 / a.p99, 0)}× | ${fmt(cliNew, 0)} | ${fmt(cliOld, 0)} | ${fmt(cliOld / cliNew, 1)}× | ${a.errors + b.errors} | ${load1().toFixed(1)} |`);
    log(rows[rows.length - 1]!);
  }
  const ev = await eventDelays(lv.uri, fresh.base, fresh.token, runner, o.eventRounds);
  const facts = { ...machineFacts(), node: process.version, connections: String(o.connections), seconds: String(o.durationS) };
  console.log(`\n${Object.entries(facts).map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  console.log('\n| instances | events p50 ms | events p99 ms | virsh p50 ms | virsh p99 ms | p99 virsh/events | CLI list ms | CLI list ms (virsh) | CLI virsh/protocol | errors | load |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
  console.log(`\nvirsh destroy → API shows "shut off": median ${fmt(median(ev.apiMs))} ms, max ${fmt(Math.max(...ev.apiMs))} ms (${ev.apiMs.length} rounds); ` +
    `the virsh destroy itself: median ${fmt(median(ev.virshMs))} ms`);
  ctx.close();
  if (o.json) await writeFile(o.json, JSON.stringify({ options: o, facts, results, events: ev }, null, 2));
}

main().then(() => cleanup(), async (e: unknown) => {
  log(`failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  await cleanup();
  process.exitCode = 1;
});
