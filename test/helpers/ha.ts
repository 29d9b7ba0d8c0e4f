import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { local } from '../../src/exec/exec.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { sleep } from '../../src/exec/process.js';
import { CLI, requireBundledCli } from './env.js';

/**
 * What the host-failure proof (test/integration/ha.test.ts) and its benchmark (bench/ha-recovery.ts)
 * share: a lab node's power loss, the HA watcher as a child process, the host's HA story as kumo
 * tells it, and the first answer of a moved instance.
 */

/** `kumo host show NAME --json`'s `ha`: the host's failure story. Times as kumo prints them. */
export interface HostHa {
  state: 'up' | 'down' | 'fenced' | 'unfenced';
  downAt?: string;
  fencedAt?: string;
  rejoinedAt?: string;
  fenceError?: string;
  moved: { instance: string; to: string; at: string }[];
}

/** An ISO time (or epoch ms) as epoch ms. */
export const ms = (t: string | number | undefined): number => (t === undefined ? NaN : typeof t === 'number' ? t : Date.parse(t));

/** Whether a process exists and is not a zombie (PID 1 here reaps no orphans: a killed daemon stays a zombie). */
export async function aliveNotZombie(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // The state follows the command's closing parenthesis: "PID (COMM) S ...".
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return stat !== '' && state !== 'Z' && state !== 'X';
}

const commOf = async (pid: number) => (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();

/**
 * A lab node losing power: `everything` SIGKILLs every process in its network namespace at once
 * (libvirtd, virtlogd, every QEMU of its guests: no clean shutdown, no last word to libvirt);
 * `libvirtd` kills only its libvirtd (a crashed management daemon: its guests run on). Resolves
 * once none of them runs any more, with what was killed (command names) and when (epoch ms,
 * right after the signals were sent).
 */
export async function powerOff(netns: string, what: 'everything' | 'libvirtd'): Promise<{ killed: string[]; at: number }> {
  const pids = (await local.run('ip', ['netns', 'pids', netns])).stdout.split('\n').map(Number).filter((p) => p > 1);
  const victims: { pid: number; comm: string }[] = [];
  for (const pid of pids) {
    const comm = await commOf(pid);
    if (!(await aliveNotZombie(pid))) continue;
    if (what === 'everything' || comm === 'libvirtd') victims.push({ pid, comm });
  }
  if (!victims.some((v) => v.comm === 'libvirtd')) throw new Error(`no libvirtd runs in ${netns}: nothing to power off`);
  for (const v of victims) {
    try { process.kill(v.pid, 'SIGKILL'); } catch { /* gone already */ }
  }
  const at = Date.now();
  for (let i = 0; i < 100; i++) {
    const alive = await Promise.all(victims.map((v) => aliveNotZombie(v.pid)));
    if (!alive.some(Boolean)) return { killed: victims.map((v) => v.comm), at };
    await sleep(50);
  }
  throw new Error(`processes of ${netns} survived SIGKILL: ${victims.map((v) => `${v.pid} ${v.comm}`).join(', ')}`);
}

/** `kumo ha run ARGS` in the foreground, as a service manager runs it; stop() ends it and gives what it printed. */
export function startWatcher(cliEnv: NodeJS.ProcessEnv, args: string[] = ['--interval', '1', '--misses', '3']) {
  requireBundledCli();
  const child = spawn(process.execPath, [CLI, 'ha', 'run', ...args], { env: cliEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    output: () => out,
    /** Whether it has ended on its own (it must not: it runs until stopped). */
    exitCode: () => child.exitCode,
    async stop(): Promise<string> {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const bounded = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
        if (!bounded) child.kill('SIGKILL');
        await exited;
      }
      return out;
    },
  };
}

/** The instance's own page (the tiny image serves `<h1>NAME</h1>` on 8080), GET from a lab node. */
export async function pageFrom(netns: string, ip: string, timeoutS = 1): Promise<string | undefined> {
  const r = await new NetnsExecutor(netns).run('curl', ['-sf', '--max-time', String(timeoutS), `http://${ip}:8080/`], { allowFailure: true });
  return r.code === 0 ? r.stdout : undefined;
}

/**
 * Polls an instance's address from a lab node every 200 ms until the instance itself answers
 * (its name in the page); when it did (epoch ms), or undefined after `timeoutMs`.
 */
export async function firstAnswer(netns: string, ip: string, name: string, timeoutMs: number): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const t0 = Date.now();
    if ((await pageFrom(netns, ip))?.includes(`<h1>${name}</h1>`)) return Date.now();
    await sleep(Math.max(0, 200 - (Date.now() - t0)));
  }
  return undefined;
}

/** Domain names a libvirt knows, running or not. */
export async function domainsAt(uri: string): Promise<string[]> {
  const r = await local.run('virsh', ['-q', '-c', uri, 'list', '--all', '--name'], { timeoutMs: 20_000 });
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** QEMU processes on this machine that run the guest NAME (every hypervisor of the lab is on it). */
export async function qemuOf(name: string): Promise<number[]> {
  const out = (await local.run('ps', ['-eo', 'pid=,stat=,args='])).stdout.split('\n');
  return out.filter((l) => l.includes('qemu-system') && new RegExp(`guest=${name}[,\\s]`).test(l) && !/^\s*\d+\s+Z/.test(l))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}
