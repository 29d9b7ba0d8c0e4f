import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, makeTestEnv, requireBundledCli, type TestEnv } from '../helpers/env.js';
import { ImageService } from '../../src/service/images.js';
import { LabService } from '../../src/service/lab.js';

/**
 * Issue 17, as a user sees it: `kumo instance create --wait` on a lab hypervisor whose DHCP
 * server is dead says, while it waits, that it waits for the guest's DHCP lease (before, it
 * printed "waiting for ... to answer on port 8080..." once and then nothing for 180 s). The
 * first create on the lab's fresh libvirtd is timed along the way (docs/benchmarks.md: the
 * issue's 110 s first define); the figure is reported, never asserted.
 */
let env: TestEnv;

const labYaml = (name: string) => `# one hypervisor on one instance segment, under this run's name
name: ${name}
segments:
  backend: { cidr: 10.5.72.0/24, instances: true }
nodes:
  kvm1: { roles: [hypervisor], links: { backend: 10.5.72.11 } }
`;

/** Runs the CLI until `until` shows on stderr (then stops it) or it ends; what it said, and when (each chunk's time since start). */
function cliUntil(args: string[], until: RegExp, timeoutMs: number): Promise<{ stderr: string; sawAfterMs?: number; code: number | null; timed: string }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, ...args], { env: env.cliEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let timed = '';
    let sawAfterMs: number | undefined;
    const stop = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      timed += `[${((Date.now() - started) / 1000).toFixed(1)} s] ${d.toString()}`;
      if (sawAfterMs === undefined && until.test(stderr)) {
        sawAfterMs = Date.now() - started;
        child.kill('SIGTERM');
      }
    });
    child.stdout.resume();
    child.on('close', (code) => {
      clearTimeout(stop);
      resolve({ stderr, code, timed, ...(sawAfterMs !== undefined ? { sawAfterMs } : {}) });
    });
  });
}

before(async () => {
  requireBundledCli();
  env = await makeTestEnv('waits');
  await new ImageService(env.ctx).buildTiny();
});

after(async () => {
  // Pass or fail: the lab (and the instances in it) goes, then the test's own world.
  await new LabService(env.ctx).down().catch(() => undefined);
  await env?.cleanup();
});

test('create --wait with the segment\'s DHCP server dead says it waits for the DHCP lease, while it waits', async (t) => {
  const labFile = join(env.home, 'lab.yaml');
  await writeFile(labFile, labYaml(env.prefix));
  let started = Date.now();
  const up = await env.cli(['lab', 'up', labFile]);
  assert.equal(up.code, 0, up.stderr);
  t.diagnostic(`lab up (fresh libvirtd, from nothing): ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // The first create on the fresh libvirtd: the define the issue saw stall for 110 s.
  started = Date.now();
  const first = await cliUntil(['instance', 'create', `${env.prefix}-a`, '--image', 'tiny', '--vcpus', '1', '--ram', '128', '--disk-size', '1', '--password', 'waits-test', '--network', 'backend', '--host', 'kvm1'],
    /$^/, 300_000);
  assert.equal(first.code, 0, first.stderr);
  t.diagnostic(`first instance create on the fresh lab libvirtd: ${((Date.now() - started) / 1000).toFixed(1)} s; it said: ${JSON.stringify(first.timed)}`);

  // The segment's DHCP server dies: no guest on it gets a lease any more.
  const leaseFile = env.ctx.networkSubnets.get('backend')?.leaseFile;
  assert.ok(leaseFile, 'the lab gave its segment a DHCP server');
  const pid = Number((await readFile(leaseFile.replace(/\.leases$/, '.pid'), 'utf8')).trim());
  assert.ok(pid > 1);
  process.kill(pid, 'SIGKILL');

  const r = await cliUntil(['instance', 'create', `${env.prefix}-b`, '--image', 'tiny', '--vcpus', '1', '--ram', '128', '--disk-size', '1', '--password', 'waits-test', '--network', 'backend', '--host', 'kvm1', '--wait'],
    /still waiting for a DHCP lease for instance "[^"]+-b": \d+ s/, 90_000);
  assert.ok(r.sawAfterMs !== undefined, `the wait for the lease was never named; the CLI said:\n${r.stderr}`);
  t.diagnostic(`named the lease wait after ${(r.sawAfterMs / 1000).toFixed(1)} s`);
  assert.match(r.stderr, /waiting for [^ ]+-b to be ready \(http:8080\)\.\.\.\n[\s\S]*still waiting for a DHCP lease/, 'said after the wait began');
});
