#!/usr/bin/env node
/**
 * How kumo should talk to libvirt, measured side by side in one run on a private libvirtd:
 * (1) a `virsh` process per call, as src/drivers/libvirt/virsh.ts does today; (2) one
 * long-lived interactive virsh per host (bench/virsh-session.ts); (3) libvirt's own remote
 * protocol over the daemon's unix socket (src/drivers/libvirt/rpc/, kumo's driver). For 10, 100 and 1,000 defined
 * (not running) domains: listing every domain with its state, one domain's state, one
 * domain's XML. Then how long a lifecycle event takes to arrive after `virsh start`,
 * `virsh destroy`, `virsh define` and `virsh undefine` (RPC events against `virsh event --loop`).
 *
 *   node dist/bench/libvirt-conn.js [--counts 10,100,1000] [--rounds R] [--event-rounds E] [--workdir DIR] [--json FILE]
 *
 * Never touches the machine's own libvirtd: everything lives in a libvirtd of the bench's own
 * (its own mount namespace and state folder), stopped and removed in a finally block (also on
 * Ctrl+C). See bench/README.md.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startLibvirtd, stopLibvirtd } from '../src/drivers/daemons/libvirtd/namespace.js';
import { Virsh } from '../src/drivers/libvirt/virsh.js';
import { benchFolder, cleanup, fmt, load1, log, machineFacts, median, now, run, scriptOptions, sleep, undo } from './common.js';
import { LibvirtConnection } from '../src/drivers/libvirt/rpc/connection.js';
import { defineDomain, domainState, domainXml, listAllWithState } from '../src/drivers/libvirt/rpc/domains.js';
import { LIFECYCLE_EVENT_NAMES, type Domain } from '../src/drivers/libvirt/rpc/protocol.js';
import { VirshSession, watchVirshEvents } from './virsh-session.js';

interface Options { counts: number[]; rounds: number; eventRounds: number; workdir: string; json?: string }
type Method = 'spawn' | 'session' | 'rpc';
const METHODS: Method[] = ['spawn', 'session', 'rpc'];
type Op = 'list' | 'state' | 'xml';
/** Listing has a fourth contender: the session with virsh's bulk-stats command instead of its table. */
type Lister = Method | 'sessionStats';
const LISTERS: Lister[] = ['spawn', 'session', 'sessionStats', 'rpc'];

function usage(): string {
  return `usage: node dist/bench/libvirt-conn.js [options]
  --counts LIST       domains defined for each measurement, comma-separated (default 10,100,1000; run in ascending order)
  --rounds R          rounds per count (default 30); medians and nearest-rank p99 reported
  --event-rounds E    rounds of lifecycle events after virsh start, destroy, define, undefine (default 10)
  --workdir DIR       where the per-run folder is made (default /var/tmp)
  --json FILE         also write every sample to FILE`;
}

const options = (): Options => scriptOptions({
  counts: { kind: 'wholes', min: 1, sort: true, default: [10, 100, 1000] },
  rounds: { kind: 'whole', min: 1, default: 30 },
  'event-rounds': { kind: 'whole', min: 0, default: 10 },
  workdir: { kind: 'text', default: '/var/tmp' },
  json: { kind: 'text' },
}, usage(), (v) => ({ counts: v.counts, rounds: v.rounds, eventRounds: v['event-rounds'], workdir: v.workdir, json: v.json }));

/** Nearest-rank percentile; with 30 samples p99 is the largest. */
function pct(xs: number[], p: number): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)];
}

/** A domain of the listing: 16 MiB, a disk that does not exist (it is never started). */
const idleDomainXml = (name: string) => `<domain type='qemu'><name>${name}</name><memory unit='MiB'>16</memory>` +
  `<os><type arch='x86_64'>hvm</type></os><features><acpi/></features><devices><disk type='file' device='disk'>` +
  `<source file='/nonexistent/${name}.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>`;

/** A guest that really runs: no disk, so QEMU sits in its firmware; start and destroy are real. */
const runnerXml = (name: string) => `<domain type='qemu'><name>${name}</name><memory unit='MiB'>32</memory>` +
  `<os><type arch='x86_64'>hvm</type></os><features><acpi/></features><devices></devices></domain>`;

/** The three ways to ask the same three questions; each checks its answer so nothing is measured empty. */
function clients(uri: string, spawnVirsh: Virsh, session: VirshSession, rpc: LibvirtConnection) {
  const sessionList = async () => {
    const table = await session.run(['list', '--all']);
    const uuids = await session.run(['list', '--all', '--uuid', '--name']);
    return { rows: table.split('\n').filter((l) => l.trim()).length, uuids: uuids.split('\n').filter((l) => l.trim()).length };
  };
  // domstats --state asks libvirt once for every domain's state; it prints no UUIDs, so the names/UUIDs list joins it.
  const sessionStats = async () => {
    const stats = await session.run(['domstats', '--state']);
    const states = stats.split('\n').filter((l) => l.includes('state.state=')).length;
    const uuids = (await session.run(['list', '--all', '--uuid', '--name'])).split('\n').filter((l) => l.trim()).length;
    return Math.min(states, uuids);
  };
  return {
    uri,
    list: {
      spawn: async () => (await spawnVirsh.listDomains()).length,
      session: async () => (await sessionList()).rows,
      sessionStats,
      rpc: async () => (await listAllWithState(rpc)).length,
    } satisfies Record<Lister, () => Promise<number>>,
    state: {
      spawn: (d: Domain) => spawnVirsh.domainState(d.uuid),
      session: async (d: Domain) => (await session.run(['domstate', d.uuid])).trim(),
      rpc: (d: Domain) => domainState(rpc, d),
    } satisfies Record<Method, (d: Domain) => Promise<string>>,
    xml: {
      spawn: async (d: Domain) => (await spawnVirsh.dumpXml(d.uuid)) ?? '',
      session: (d: Domain) => session.run(['dumpxml', d.uuid]),
      rpc: (d: Domain) => domainXml(rpc, d),
    } satisfies Record<Method, (d: Domain) => Promise<string>>,
  };
}

type OpSamples = { list: Record<Lister, number[]>; state: Record<Method, number[]>; xml: Record<Method, number[]> };
type Samples = Record<number, OpSamples>;

/** `rounds` rounds; in each, every method answers each question once, in an order that rotates. */
async function measureCount(c: ReturnType<typeof clients>, count: number, domains: Domain[], rounds: number): Promise<OpSamples> {
  const out: OpSamples = { list: { spawn: [], session: [], sessionStats: [], rpc: [] }, state: { spawn: [], session: [], rpc: [] }, xml: { spawn: [], session: [], rpc: [] } };
  for (let r = -1; r < rounds; r++) { // round -1 warms up and is not kept
    for (const m of LISTERS.map((_, i) => LISTERS[(i + r + 4) % 4]!)) {
      const t = now();
      const n = await c.list[m]();
      if (n !== count) throw new Error(`${m} listed ${n} domains, ${count} are defined`);
      if (r >= 0) out.list[m].push(now() - t);
    }
    const target = domains[Math.floor(Math.random() * domains.length)]!;
    for (const m of METHODS.map((_, i) => METHODS[(i + r + 3) % 3]!)) {
      let t = now();
      const state = await c.state[m](target);
      const stateMs = now() - t;
      if (state !== 'shut off') throw new Error(`${m} says ${target.name} is "${state}", not "shut off"`);
      t = now();
      const xml = await c.xml[m](target);
      const xmlMs = now() - t;
      if (!xml.includes(`<uuid>${target.uuid}</uuid>`)) throw new Error(`${m} returned XML without ${target.uuid}`);
      if (r < 0) continue;
      out.state[m].push(stateMs);
      out.xml[m].push(xmlMs);
    }
  }
  return out;
}

interface EventDelay { action: string; command: number; rpc: number; virshEvent: number }

/** Waits until `seen` has an event `event` for `domain` that arrived after `since`; its arrival time. */
async function arrival(seen: { domain: string; event: string; at: number }[], domain: string, event: string, since: number): Promise<number> {
  const deadline = now() + 30_000;
  for (;;) {
    const e = seen.find((x) => x.domain === domain && x.event === event && x.at >= since);
    if (e) return e.at;
    if (now() > deadline) throw new Error(`no "${event}" event for ${domain} within 30 s`);
    await sleep(2);
  }
}

/** virsh start/destroy of a running guest and define/undefine of another, each timed from the command's start. */
async function measureEvents(uri: string, rpc: LibvirtConnection, prefix: string, dir: string, rounds: number): Promise<EventDelay[]> {
  const viaRpc: { domain: string; event: string; at: number }[] = [];
  const viaVirsh: { domain: string; event: string; at: number }[] = [];
  await rpc.subscribeLifecycle({
    event: (e) => viaRpc.push({ domain: e.dom.name, event: LIFECYCLE_EVENT_NAMES[e.event] ?? String(e.event), at: now() }),
    resync: () => { throw new Error('the private libvirtd went away during the measurement'); },
  });
  const watcher = watchVirshEvents(uri, (e) => viaVirsh.push(e));
  undo.push({ what: 'stop virsh event', fn: async () => watcher.stop() });
  await sleep(1_000); // virsh event has connected and registered
  const runner = `${prefix}-run`;
  await defineDomain(rpc, runnerXml(runner));
  const churn = `${prefix}-ev`;
  const churnFile = join(dir, 'churn.xml');
  await writeFile(churnFile, idleDomainXml(churn));
  const out: EventDelay[] = [];
  const timed = async (action: string, args: string[], domain: string, event: string) => {
    const t0 = now();
    await run('virsh', ['-q', '-c', uri, ...args], { timeoutMs: 60_000 });
    const done = now();
    const [a, b] = await Promise.all([arrival(viaRpc, domain, event, t0), arrival(viaVirsh, domain, event, t0)]);
    out.push({ action, command: done - t0, rpc: a - t0, virshEvent: b - t0 });
  };
  for (let i = 0; i < rounds; i++) {
    await timed('start', ['start', runner], runner, 'Started');
    await sleep(300);
    await timed('destroy', ['destroy', runner], runner, 'Stopped');
    await timed('define', ['define', churnFile], churn, 'Defined');
    await timed('undefine', ['undefine', churn], churn, 'Undefined');
    log(`events: round ${i + 1}/${rounds}`);
  }
  return out;
}

function report(o: Options, samples: Samples, events: EventDelay[], facts: Record<string, string>): void {
  const lines = ['', '## Per call (ms): median / p99 (nearest rank) of ' + o.rounds + ' rounds', ''];
  lines.push('| domains | question | virsh per call | virsh session | session, domstats | remote protocol | per call ÷ protocol | session ÷ protocol |');
  lines.push('|---:|---|---:|---:|---:|---:|---:|---:|');
  for (const n of o.counts) {
    for (const op of ['list', 'state', 'xml'] as Op[]) {
      const s: Partial<Record<Lister, number[]>> = samples[n]![op];
      const cell = (m: Lister) => (s[m] ? `${fmt(median(s[m]), 2)} / ${fmt(pct(s[m], 99), 2)}` : '—');
      const ratio = (m: Lister) => fmt(median(s[m]!)! / median(s.rpc!)!, 0, '×');
      const bestSession = op === 'list' ? 'sessionStats' : 'session';
      lines.push(`| ${n} | ${op} | ${cell('spawn')} | ${cell('session')} | ${cell('sessionStats')} | ${cell('rpc')} | ${ratio('spawn')} | ${ratio(bestSession)} |`);
    }
  }
  lines.push('', `## Lifecycle events: ms from the virsh command's start, median (min–max) of ${o.eventRounds}`, '');
  lines.push('| action | command returned | remote protocol event | `virsh event --loop` | protocol event − command return | virsh event − command return |',
    '|---|---:|---:|---:|---:|---:|');
  for (const action of ['start', 'destroy', 'define', 'undefine']) {
    const e = events.filter((x) => x.action === action);
    const spread = (xs: number[]) => `${fmt(median(xs), 1)} (${fmt(Math.min(...xs), 1)}…${fmt(Math.max(...xs), 1)})`;
    const cell = (k: keyof Omit<EventDelay, 'action'>) => spread(e.map((x) => x[k]));
    const after = (k: 'rpc' | 'virshEvent') => spread(e.map((x) => x[k] - x.command));
    if (e.length) lines.push(`| ${action} | ${cell('command')} | ${cell('rpc')} | ${cell('virshEvent')} | ${after('rpc')} | ${after('virshEvent')} |`);
  }
  lines.push('', Object.entries(facts).map(([k, v]) => `${k}: ${v}`).join('; '));
  process.stdout.write(lines.join('\n') + '\n');
}

async function main(): Promise<void> {
  const o = options();
  const facts: Record<string, string> = { ...machineFacts(), node: process.version, virsh: (await run('virsh', ['--version'])).trim() };
  const { prefix, dir } = await benchFolder('kl', o.workdir);
  const stateDir = join(dir, 'libvirtd');
  log(`${prefix}: starting a private libvirtd in ${stateDir}`);
  undo.push({ what: 'stop the private libvirtd', fn: () => stopLibvirtd(stateDir) });
  // /dev/kvm is hidden from it: the bench's domains are software-emulated anyway, and a broken
  // /dev/kvm would make libvirtd probe QEMU again on every define.
  const lv = await startLibvirtd({ name: `${prefix}-lv`, stateDir, maskKvm: true });
  const rpc = new LibvirtConnection(lv.uri, { callTimeoutMs: 120_000 });
  undo.push({ what: 'close the RPC connection', fn: () => rpc.close() });
  const session = new VirshSession(lv.uri);
  undo.push({ what: 'end the virsh session', fn: async () => session.close() });
  const c = clients(lv.uri, new Virsh(lv.uri), session, rpc);
  const domains: Domain[] = [];
  const samples: Samples = {};
  for (const n of o.counts) {
    const t = now();
    while (domains.length < n) domains.push(await defineDomain(rpc, idleDomainXml(`${prefix}-d${String(domains.length).padStart(5, '0')}`)));
    log(`${n} domains defined (${fmt((now() - t) / 1000, 1)} s); measuring ${o.rounds} rounds, load ${load1().toFixed(2)}`);
    samples[n] = await measureCount(c, n, domains, o.rounds);
  }
  const events = await measureEvents(lv.uri, rpc, prefix, dir, o.eventRounds);
  facts['load at end'] = load1().toFixed(2);
  report(o, samples, events, facts);
  if (o.json) await writeFile(o.json, JSON.stringify({ options: o, facts, samples, events }, null, 2));
}

main().then(() => cleanup(), async (e: unknown) => {
  log(`failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  await cleanup();
  process.exitCode = 1;
});
