#!/usr/bin/env node
/**
 * What keeping the API's instance list ready saves, in-process and side by side in one run: the
 * same server (buildServer, as `kumo serve` builds it) on N seeded instance records whose states
 * come from a domain watch (a scripted host: no libvirt, no leases), asked for GET
 * /api/v1/instances R times each way, alternating rounds: answered from the kept list, and with a
 * store write before every request (the list is then built, checked and serialised per request,
 * as before it was kept). Medians and p99 of the per-request times, and their ratio.
 *
 *   node dist/bench/api-list-kept.js [--counts 10,100,1000] [--requests 200] [--rounds 3]
 *
 * Needs no root; everything lives in a temporary KUMO_HOME removed at the end.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer } from '../src/api/server.js';
import { openContext } from '../src/service/context.js';
import { DomainWatch } from '../src/service/domain-watch.js';
import { TokenService } from '../src/service/tokens.js';
import type { DomainListing } from '../src/drivers/libvirt/virsh.js';
import { fmt, load1, log, machineFacts, median, now, scriptOptions, sleep } from './common.js';

function usage(): string {
  return `usage: node dist/bench/api-list-kept.js [options]
  --counts LIST        instance counts, comma-separated, each 1-100000 (default 10,100,1000)
  --requests R         requests each way per round (default 200)
  --rounds N           alternating rounds of kept / built per request (default 3)`;
}

const options = () => scriptOptions({
  counts: { kind: 'wholes', min: 1, max: 100_000, default: [10, 100, 1000] },
  requests: { kind: 'whole', min: 1, max: 100_000, default: 200 },
  rounds: { kind: 'whole', min: 1, max: 100_000, default: 3 },
}, usage(), (v) => v);

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil((p / 100) * xs.length) - 1)] ?? NaN;

async function one(n: number, requests: number, rounds: number): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'kumo-bench-kept-'));
  const ctx = openContext({ home, libvirtUri: 'test:///default', libvirtProtocol: false });
  const watch = new DomainWatch({ hostSource: () => ({ subscribe: async () => async () => undefined, list: async () => domains }) });
  const domains: DomainListing[] = [];
  const app = await buildServer(ctx, { monitor: false, watchDomains: false, webRoot: join(home, 'no-web') });
  try {
    ctx.images.upsert({ name: 'tiny', os: 'bench', disk: join(home, 'tiny.qcow2'), format: 'qcow2', virtualSizeBytes: 1 << 26, source: 'bench', createdAt: new Date().toISOString() });
    for (let i = 0; i < n; i++) {
      const uuid = randomUUID();
      domains.push({ name: `d${i}`, uuid, state: i % 2 ? 'running' : 'shut off' });
      ctx.instances.insert({ name: `d${i}`, uuid, host: 'local', image: 'tiny', vcpus: 1, ramMiB: 16, diskGiB: 1, networks: [], nics: [], dataDisks: [], sshKeys: [], createdAt: new Date().toISOString(), project: 'default' });
    }
    ctx.observed = watch;
    watch.of('local');
    while (!watch.of('local')) await sleep(5);
    const token = new TokenService(ctx).create('bench').token;
    const get = async () => {
      const r = await app.inject({ method: 'GET', url: '/api/v1/instances', headers: { authorization: `Bearer ${token}` } });
      if (r.statusCode !== 200) throw new Error(`GET /api/v1/instances answered ${r.statusCode}: ${r.body.slice(0, 300)}`);
    };
    const timed = async (before?: () => void) => {
      const t: number[] = [];
      for (let i = 0; i < requests; i++) {
        before?.();
        const t0 = now();
        await get();
        t.push(now() - t0);
      }
      return t;
    };
    for (let i = 0; i < 20; i++) await get(); // warm
    const kept: number[] = [];
    const built: number[] = [];
    for (let r = 0; r < rounds; r++) {
      kept.push(...await timed());
      built.push(...await timed(() => ctx.settings.set('bench.touch', String(Math.random()))));
    }
    const k = median(kept)!;
    const b = median(built)!;
    return `| ${n} | ${fmt(k)} | ${fmt(pct(kept, 99))} | ${fmt(b)} | ${fmt(pct(built, 99))} | ${fmt(b / k, 0)}× | ${load1().toFixed(1)} |`;
  } finally {
    await app.close();
    await watch.stop();
    ctx.close();
    await rm(home, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const o = options();
  const rows: string[] = [];
  for (const n of o.counts) {
    rows.push(await one(n, o.requests, o.rounds));
    log(rows[rows.length - 1]!);
  }
  console.log(`\n${Object.entries({ ...machineFacts(), node: process.version, requests: String(o.requests), rounds: String(o.rounds) }).map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  console.log('\n| instances | kept p50 ms | kept p99 ms | built per request p50 ms | built p99 ms | p50 built/kept | load |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
}

main().catch((e: unknown) => {
  log(`failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  process.exitCode = 1;
});
