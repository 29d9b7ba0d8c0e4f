import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestEnv, type TestEnv } from '../helpers/env.js';
import { local } from '../../src/exec/exec.js';
import { KumoError } from '../../src/model/errors.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { openContext } from '../../src/service/context.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { LibvirtConnection } from '../../src/drivers/libvirt/rpc/connection.js';

/**
 * The domain lifecycle writes over the host's protocol connection, against the machine's real
 * libvirtd: create, stop, start, reboot, destroy and delete of a real guest spawn no virsh for
 * them; an unreachable libvirtd is told in the same words as with virsh; KUMO_LIBVIRT_PROTOCOL=0
 * (the way back) still creates and deletes, through virsh.
 */
let env: TestEnv;
let bin: string;
let log: string;
const savedPath = process.env.PATH;

/**
 * What virsh this process ran, and for what: a `virsh` first on PATH that writes its arguments
 * to a log and runs the real one (the executor finds commands on PATH at each spawn).
 */
async function recordVirsh(): Promise<void> {
  const real = (await local.run('sh', ['-c', 'command -v virsh'])).stdout.trim();
  bin = await mkdtemp(join(tmpdir(), 'kumo-virsh-spy-'));
  log = join(bin, 'calls.log');
  await writeFile(log, '');
  await writeFile(join(bin, 'virsh'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec '${real}' "$@"\n`);
  await chmod(join(bin, 'virsh'), 0o755);
  process.env.PATH = `${bin}:${savedPath}`;
}

/** The virsh commands (the verb after `-q -c URI`) run since the last look. */
async function virshRun(): Promise<string[]> {
  const lines = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
  await writeFile(log, '');
  return lines.map((l) => l.split(' ').find((w, i, all) => i > 0 && all[i - 1] !== '-c' && !w.startsWith('-')) ?? l);
}

/**
 * Reads a create, a get and a delete may still ask through virsh where the protocol is off for
 * them: the network listing and the DHCP leases an instance view shows. A network's XML, which
 * every create looks up, is asked over the protocol: a `net-dumpxml` spawned is a failure.
 */
const OTHER_READS = new Set(['net-list', 'net-dhcp-leases']);

before(async () => {
  env = await makeTestEnv('lwr');
  await new ImageService(env.ctx).buildTiny();
  await recordVirsh();
});
after(async () => {
  process.env.PATH = savedPath;
  await env?.cleanup();
  if (bin) await rm(bin, { recursive: true, force: true });
});

test('create, stop, start, reboot, destroy and delete of a real guest spawn no virsh for their libvirt writes', async () => {
  const svc = new InstanceService(env.ctx);
  const name = `${env.prefix}-a`;
  await virshRun();
  const created = await svc.create({ name, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network] });
  assert.equal(created.state, 'running');
  assert.deepEqual(await svc.stop(name, 1_000), { forced: true }, 'a guest still booting ignores the ACPI request: the plug is pulled');
  assert.equal((await svc.get(name, { ask: true })).state, 'shut off');
  assert.equal(await svc.start(name), true);
  await svc.reboot(name);
  await svc.destroy(name);
  assert.equal((await svc.get(name, { ask: true })).state, 'shut off');
  await svc.delete(name);
  assert.equal(await env.ctx.virsh.domainState(created.uuid), 'missing');
  const spawned = (await virshRun()).filter((verb) => !OTHER_READS.has(verb));
  assert.deepEqual(spawned, [], `virsh was spawned for: ${spawned.join(', ')}`);
  // The host's facts placement asks before a create, and a network's XML: the same over the protocol as from virsh.
  assert.deepEqual(await env.ctx.virsh.nodeInfo(), await new Virsh('qemu:///system').nodeInfo());
  assert.equal((await env.ctx.virsh.networkXml(env.network))?.trim(), (await new Virsh('qemu:///system').networkXml(env.network))?.trim());
  assert.equal(await env.ctx.virsh.networkXml(`${env.prefix}-no-such-net`), undefined, 'a missing network is none, as from virsh');
});

test('KUMO_LIBVIRT_PROTOCOL=0 (the way back) still creates and deletes, through virsh', async () => {
  const ctx = openContext({ home: env.home, libvirtProtocol: false });
  try {
    const svc = new InstanceService(ctx);
    const name = `${env.prefix}-v`;
    await virshRun();
    const created = await svc.create({ name, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network] });
    assert.equal(created.state, 'running');
    await svc.delete(name);
    assert.equal(await env.ctx.virsh.domainState(created.uuid), 'missing');
    const verbs = await virshRun();
    for (const verb of ['nwfilter-list', 'define', 'start', 'destroy', 'undefine']) assert.ok(verbs.includes(verb), `virsh ${verb} ran: ${verbs.join(', ')}`);
  } finally {
    ctx.close();
  }
});

test('a write to a libvirtd that does not run is refused in the same words over the protocol as with virsh', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-writes-down-'));
  const uri = `qemu+unix:///system?socket=${dir}/libvirt-sock`;
  const conn = new LibvirtConnection(uri);
  const host = () => `${env.prefix}-kvm9`;
  const overVirsh = new Virsh(uri, local, undefined, host);
  const overProtocol = new Virsh(uri, local, undefined, host, conn);
  const refusal = async (write: (v: Virsh) => Promise<void>, v: Virsh) => {
    const e = await write(v).then(() => undefined, (x: unknown) => x);
    assert.ok(e instanceof KumoError, `refused: ${String(e)}`);
    return { code: e.code, message: e.message, fix: e.fix };
  };
  try {
    const uuid = '5b0ad6d2-3c2b-4a11-9a0e-2f0f6b1e7c41';
    const writes: [string, (v: Virsh) => Promise<void>][] = [
      ['define', (v) => v.defineDomain(`<domain type='qemu'><name>${env.prefix}-x</name><uuid>${uuid}</uuid></domain>`)],
      ['start', (v) => v.start(uuid)], ['shutdown', (v) => v.shutdown(uuid)], ['reboot', (v) => v.reboot(uuid)],
      ['destroy', (v) => v.destroy(uuid)], ['remove', (v) => v.removeDomain(uuid)],
    ];
    for (const [what, write] of writes) {
      const before = await refusal(write, overVirsh);
      assert.match(before.message, /does not answer \(is libvirtd running\?\)/, what);
      assert.deepEqual(await refusal(write, overProtocol), before, what);
    }
  } finally {
    await conn.close();
    await rm(dir, { recursive: true, force: true });
  }
});
