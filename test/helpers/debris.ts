import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { local } from '../../src/exec/exec.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import type { TestEnv } from './env.js';

/**
 * Everything a run could leave behind, as one comparable value: the fault tests take it before an
 * operation is interrupted and again after the next kumo command, and want the two equal (or the
 * operation's whole result, when it was finished instead of undone).
 */
export interface Debris {
  domains: string[];
  networks: string[];
  /** Files and folders under KUMO_HOME, but the store, the image cache and logs. */
  files: string[];
  /** Rows per table of kumo's store that name things kumo made. */
  rows: Record<string, number>;
  namespaces: string[];
  nftTables: string[];
  /** Processes whose command line names the run's home or prefix (QEMU, dnsmasq, HAProxy, nginx, ganesha). */
  processes: string[];
  /** Mount points under KUMO_HOME (the shares folder's nosuid bind). */
  mounts: string[];
}

const TABLES = ['instances', 'volumes', 'shares', 'load_balancers', 'journal', 'network_projects', 'datacenter_resources', 'network_bridges', 'flavors'];
/** The store itself and what only grows (the audit log), the image cache, and daemon logs. */
const NOT_DEBRIS = /^(kumo\.db.*|cache(\/.*)?|images(\/.*)?|audit.*|.*\.log|accel-probe\.json)$/;

async function walk(root: string, dir = root): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, e.name);
    const rel = relative(root, path);
    if (NOT_DEBRIS.test(rel)) continue;
    out.push(e.isDirectory() ? `${rel}/` : rel);
    if (e.isDirectory()) out.push(...await walk(root, path));
  }
  return out.sort();
}

/**
 * `uris`: every libvirt the run uses (the machine's by default). `ignoreProcess`: processes the
 * test itself started and keeps (its second libvirtd).
 */
export async function debris(env: TestEnv, opts: { uris?: string[]; ignoreProcess?: RegExp } = {}): Promise<Debris> {
  const mine = (name: string) => name.startsWith(env.prefix);
  const domains: string[] = [];
  const networks: string[] = [];
  for (const uri of opts.uris ?? ['qemu:///system']) {
    const v = new Virsh(uri);
    domains.push(...(await v.listDomains()).filter((d) => mine(d.name)).map((d) => `${uri} ${d.name}`));
    networks.push(...(await v.listNetworks()).filter((n) => mine(n.name) && n.name !== env.network).map((n) => `${uri} ${n.name}`));
  }
  const rows: Record<string, number> = {};
  for (const t of TABLES) rows[t] = (env.ctx.db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
  const namespaces = (await local.run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n && mine(n));
  const nftTables = (await local.run('nft', ['list', 'tables'])).stdout.split('\n').filter((l) => l.includes(env.prefix));
  const processes = (await local.run('ps', ['-eo', 'pid=,args='])).stdout.split('\n')
    .map((l) => l.trim())
    .filter((l) => (l.includes(env.home) || l.includes(env.prefix)) && !l.includes(' --test') && !(opts.ignoreProcess?.test(l)))
    .map((l) => summary(l.replace(/^\d+\s+/, ''), env));
  const mounts = (await local.run('findmnt', ['-rn', '-o', 'TARGET'])).stdout.split('\n')
    .filter((t) => t === env.home || t.startsWith(`${env.home}/`)).map((t) => relative(env.home, t) || '.');
  return { domains: domains.sort(), networks: networks.sort(), files: await walk(env.home), rows, namespaces, nftTables, processes: processes.sort(), mounts: mounts.sort() };
}

/** A process as its program and what names the run in it (a QEMU by its guest), not its ids. */
function summary(args: string, env: TestEnv): string {
  const [exe, ...rest] = args.split(' ');
  const guest = /guest=([^,\s]+)/.exec(args)?.[1];
  return `${basename(exe!)} ${guest ? `guest=${guest}` : rest.filter((a) => a.includes(env.home) || a.includes(env.prefix)).join(' ')}`;
}

/** Asserts nothing is left beyond `before`, naming what is. */
export function assertNoDebris(before: Debris, after: Debris, label: string): void {
  assert.deepEqual(after, before, `${label}: left behind (actual) compared with before (expected)`);
}
