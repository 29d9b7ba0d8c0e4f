import { spawn, type ChildProcess } from 'node:child_process';
import { local } from '../../src/exec/exec.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { waitFor } from './env.js';

/**
 * What a TCP connect from a namespace met, bounded by `timeoutS`: `connected`, `timed out` (its
 * SYNs were dropped on the way: what a firewall's drop does) or `refused` (an answer: RST, no
 * route, unreachable; `detail` says which).
 */
export async function tcpFrom(netns: string, addr: string, port: number, timeoutS = 3): Promise<{ outcome: 'connected' | 'timed out' | 'refused'; detail: string }> {
  const r = await new NetnsExecutor(netns).run('timeout', [String(timeoutS), 'bash', '-c', `exec 3<>/dev/tcp/${addr}/${port}`], { allowFailure: true, input: '' });
  const detail = r.stderr.trim().split('\n').pop() ?? '';
  return { outcome: r.code === 0 ? 'connected' : r.code === 124 ? 'timed out' : 'refused', detail };
}

/**
 * A TCP listener in a namespace that answers every connection with `banner`, ready (it answered
 * on 127.0.0.1) when this resolves: a firewall check against it cannot pass because it never started.
 */
export async function listenIn(netns: string, port: number, banner = 'kumo-test'): Promise<{ stop(): void }> {
  // A client that closes before the banner is written (tcpFrom connects and leaves) resets the
  // socket: without an error handler that reset would end the listener for every later check.
  const program = `require('node:net').createServer((s) => { s.on('error', () => {}); s.end(${JSON.stringify(`${banner}\n`)}); }).listen(${port})`;
  const child: ChildProcess = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', process.execPath, '-e', program], { stdio: 'ignore' });
  const stop = () => { child.kill(); };
  try {
    await waitFor(`the listener on ${netns}:${port}`, async () => {
      if (child.exitCode !== null) throw new Error(`the listener on ${netns}:${port} exited with ${child.exitCode}`);
      const r = await new NetnsExecutor(netns).run('timeout', ['3', 'bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${port}; head -n1 <&3`], { allowFailure: true, input: '' });
      return r.code === 0 && r.stdout.trim() === banner ? true : undefined;
    }, 10_000);
  } catch (e) {
    stop();
    throw e;
  }
  return { stop };
}

const inNs = (netns: string, args: string[]) => local.run('ip', ['netns', 'exec', netns, ...args]);

/**
 * The course lab (10.5.1-3.0/24) as a real upstream network would see it: the outside routes the
 * backend and storage segments via the LB's frontend, the LB forwards (and reaches storage via
 * kvm1, which forwards too), STG routes the backend back via kvm1. Instances have no route off
 * their segments (their DHCP gives no router), so the LB puts forwarded packets from the outside
 * on the backend from 10.5.2.9, an address that is not its own backend address (which the
 * hypervisors' rule lets in): to those rules they are a stranger's packets like the outside's.
 * With this, only the access rules stand between the outside and the instances or NFS.
 * Returns the undo (routes, addresses, the test's own nftables table, ip_forward as it was).
 */
export async function routeOutsideIn(lab: string): Promise<() => Promise<void>> {
  const ns = (node: string) => `${lab}-${node}`;
  const undo: (() => Promise<unknown>)[] = [];
  const step = async (node: string, args: string[], back: string[]) => {
    await inNs(ns(node), args);
    undo.unshift(() => inNs(ns(node), back));
  };
  try {
    for (const node of ['lb', 'kvm1']) {
      const was = (await inNs(ns(node), ['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim();
      await step(node, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'], ['sysctl', '-qw', `net.ipv4.ip_forward=${was}`]);
    }
    for (const seg of ['10.5.2.0/24', '10.5.3.0/24']) await step('internet', ['ip', 'route', 'add', seg, 'via', '10.5.1.213'], ['ip', 'route', 'del', seg]);
    await step('lb', ['ip', 'route', 'add', '10.5.3.0/24', 'via', '10.5.2.11'], ['ip', 'route', 'del', '10.5.3.0/24']);
    await step('stg', ['ip', 'route', 'add', '10.5.2.0/24', 'via', '10.5.3.11'], ['ip', 'route', 'del', '10.5.2.0/24']);
    await step('lb', ['ip', 'addr', 'add', '10.5.2.9/24', 'dev', 'backend'], ['ip', 'addr', 'del', '10.5.2.9/24', 'dev', 'backend']);
    await local.run('ip', ['netns', 'exec', ns('lb'), 'nft', '-f', '-'], {
      input: 'table ip kumo-test-upstream {\n  chain post {\n    type nat hook postrouting priority srcnat;\n' +
        '    oifname "backend" ip saddr 10.5.1.0/24 snat to 10.5.2.9\n  }\n}\n',
    });
    undo.unshift(() => inNs(ns('lb'), ['nft', 'delete', 'table', 'ip', 'kumo-test-upstream']));
  } catch (e) {
    for (const u of undo) await u().catch(() => undefined);
    throw e;
  }
  return async () => { for (const u of undo) await u().catch(() => undefined); };
}

/** kumo's nftables table on a node, removed behind kumo's back; returns its listing (for `nft -f`). */
export async function dropTable(netns: string, family: 'inet' | 'bridge', name = 'kumo'): Promise<string> {
  const listing = (await inNs(netns, ['nft', 'list', 'table', family, name])).stdout;
  await inNs(netns, ['nft', 'delete', 'table', family, name]);
  return listing;
}

/** Loads a table listing dropTable returned, as it was. */
export async function restoreTable(netns: string, listing: string): Promise<void> {
  await local.run('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], { input: listing });
}
