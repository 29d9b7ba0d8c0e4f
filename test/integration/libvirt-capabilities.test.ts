import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestEnv, type TestEnv } from '../helpers/env.js';
import { needsKvmMask, type AccelResult } from '../../src/drivers/host/accel-probe.js';
import { kvmSeenBy, systemLibvirtdPid } from '../../src/drivers/host/libvirtd-kvm.js';
import { startLibvirtd, stopLibvirtd, type NamespacedLibvirtd } from '../../src/drivers/daemons/libvirtd/namespace.js';
import { Virsh, type SlowCall } from '../../src/drivers/libvirt/virsh.js';
import { libvirtdKvmProblem } from '../../src/service/host.js';

/**
 * Where /dev/kvm exists but does not work, a libvirtd that sees it judges its cached QEMU
 * capabilities stale at every lookup and probes QEMU again under software emulation: 30-110 s
 * per define (issue 22). These tests prove the cause is gone instead of timing it: libvirt's
 * capabilities cache is not rewritten by defines, and the daemons kumo starts do not see a
 * usable /dev/kvm there.
 */

let env: TestEnv;
let accel: AccelResult;
const labs: NamespacedLibvirtd[] = [];

before(async () => {
  env = await makeTestEnv('cap');
  accel = await env.ctx.accel();
});

after(async () => {
  for (const lab of labs) await stopLibvirtd(lab.stateDir).catch(() => undefined);
  await env?.cleanup();
});

/** A domain that never runs: enough to make libvirt look up QEMU's capabilities. */
const domainXml = (name: string) => `<domain type='${accel.accel === 'kvm' ? 'kvm' : 'qemu'}'><name>${name}</name>
  <memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os></domain>`;

/** Every capabilities cache file of a libvirtd with its modification time. */
async function cacheTimes(cacheDir: string): Promise<Record<string, number>> {
  const dir = join(cacheDir, 'qemu', 'capabilities');
  const out: Record<string, number> = {};
  for (const f of await readdir(dir).catch(() => [])) out[f] = (await stat(join(dir, f))).mtimeMs;
  return out;
}

/** Defines (and undefines) `count` domains in a row. */
async function defineInARow(virsh: Virsh, label: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const name = `${env.prefix}-${label}${i}`;
    try {
      await virsh.defineDomain(domainXml(name));
    } finally {
      await virsh.removeDomain(name);
    }
  }
}

/** What a libvirtd sees at /dev/kvm must match what kumo found: masked where KVM is broken. */
async function assertKvmView(pid: number, daemon: string): Promise<void> {
  const view = await kvmSeenBy(pid);
  if (needsKvmMask(accel)) {
    assert.equal(view, 'masked', `${daemon} must not see the broken /dev/kvm (${accel.reason})`);
    assert.equal(await libvirtdKvmProblem(accel, pid, daemon), undefined);
  } else {
    assert.notEqual(view, 'masked', `KVM works here (${accel.reason}): ${daemon} must see it`);
  }
}

test('the host\'s libvirtd keeps its QEMU capabilities across defines and does not see a broken /dev/kvm', async () => {
  const pid = await systemLibvirtdPid();
  assert.ok(pid, 'the system libvirtd runs and its pid file names it (scripts/bootstrap.sh starts it)');
  await assertKvmView(pid, 'the host\'s libvirtd');
  // The first define after a daemon's start may build the cache once; the ones after must not.
  await defineInARow(env.ctx.virsh, 'warm', 1);
  const before = await cacheTimes('/var/cache/libvirt');
  assert.ok(Object.keys(before).length > 0, 'libvirt keeps a capabilities cache');
  await defineInARow(env.ctx.virsh, 'def', 2);
  assert.deepEqual(await cacheTimes('/var/cache/libvirt'), before, 'two defines rewrote libvirt\'s capabilities cache: it probes QEMU on every define');
});

test('a lab libvirtd keeps its QEMU capabilities across defines and does not see a broken /dev/kvm', async () => {
  const lab = await startLibvirtd({ name: `${env.prefix}-kvm`, stateDir: join(env.home, 'lab-kvm'), maskKvm: needsKvmMask(accel) });
  labs.push(lab);
  await assertKvmView(lab.pid, 'the lab\'s libvirtd');
  const virsh = new Virsh(lab.uri);
  await defineInARow(virsh, 'lwarm', 1);
  const before = await cacheTimes(join(lab.stateDir, 'cache'));
  assert.ok(Object.keys(before).length > 0, 'the lab libvirtd keeps a capabilities cache');
  await defineInARow(virsh, 'ldef', 2);
  assert.deepEqual(await cacheTimes(join(lab.stateDir, 'cache')), before, 'two defines rewrote the lab libvirtd\'s capabilities cache');
});

test('kumo host info names a libvirtd that sees a broken /dev/kvm, with the fix', async (t) => {
  // Where KVM works (or there is no /dev/kvm) there is nothing to name: that is checked too.
  t.diagnostic(`acceleration here: ${accel.accel} (${accel.reason})`);
  // A daemon started as libvirtd is by hand, without the mask.
  const lab = await startLibvirtd({ name: `${env.prefix}-raw`, stateDir: join(env.home, 'lab-raw'), maskKvm: false });
  labs.push(lab);
  const hasKvm = existsSync('/dev/kvm');
  assert.equal(await kvmSeenBy(lab.pid), hasKvm ? 'device' : 'absent');
  const problem = await libvirtdKvmProblem(accel, lab.pid, 'libvirtd');
  if (needsKvmMask(accel)) {
    assert.ok(problem, 'the condition is named');
    assert.match(problem.problem, /sees \/dev\/kvm, which does not work here/);
    assert.match(problem.fix, /InaccessiblePaths=\/dev\/kvm/);
  } else {
    assert.equal(problem, undefined);
  }
  await stopLibvirtd(lab.stateDir);
  const r = await env.cli(['host', 'info', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { libvirtdKvm?: string; problems: { problem: string }[] };
  assert.equal(info.libvirtdKvm, needsKvmMask(accel) ? 'masked' : hasKvm ? 'device' : 'absent');
  assert.deepEqual(info.problems, [], 'the set-up left the host\'s libvirtd right');
});

test('a libvirt call that hangs says what it waits for, then times out with a clear error', async () => {
  const lab = await startLibvirtd({ name: `${env.prefix}-stop`, stateDir: join(env.home, 'lab-stop'), maskKvm: needsKvmMask(accel) });
  labs.push(lab);
  const notices: SlowCall[] = [];
  const virsh = new Virsh(lab.uri, undefined, (n) => notices.push(n));
  process.kill(lab.pid, 'SIGSTOP'); // a stuck libvirtd: the socket accepts, nothing answers
  let error: unknown;
  try {
    await virsh.run(['list', '--all'], 7_000);
  } catch (e) {
    error = e;
  } finally {
    process.kill(lab.pid, 'SIGCONT');
  }
  assert.ok(notices.length >= 1, 'the wait was reported while it lasted');
  assert.equal(notices[0]!.call, 'list');
  assert.equal(notices[0]!.uri, lab.uri);
  assert.ok(notices[0]!.elapsedMs >= 2_000 && notices[0]!.elapsedMs < 7_000);
  assert.ok(error instanceof Error);
  assert.equal((error as Error & { code?: string }).code, 'TIMEOUT');
  assert.equal((error as Error).message, `libvirt at ${lab.uri} did not finish "list" within 7 s`);
  assert.deepEqual(await virsh.listDomains(), [], 'the daemon answers again once it runs');
});
