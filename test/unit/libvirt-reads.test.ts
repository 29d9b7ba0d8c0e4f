import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Executor } from '../../src/exec/exec.js';
import { KumoError } from '../../src/model/errors.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { LibvirtConnection } from '../../src/drivers/libvirt/rpc/connection.js';
import { encodeDomain, MessageStatus, Proc, VIR_ERR_NO_DOMAIN } from '../../src/drivers/libvirt/rpc/protocol.js';
import { openContext } from '../../src/service/context.js';
import { fakeLibvirtd, reply, type FakeCall } from '../helpers/fake-libvirtd.js';

/**
 * The reads list and show lean on (listDomains, domainState, dumpXml) go over the host's
 * protocol connection when the Context has one for its URI, with virsh's answers and virsh's
 * error wording; writes and URIs the driver does not speak stay on virsh.
 */

const WEB1 = { name: 'web1', uuid: '92b82821-a133-4be0-9b23-78ffd1273585', id: 3 };
const DB1 = { name: 'db1', uuid: '0d5e0f43-6a43-4c1e-8f0e-3b8f1c2d4e5f', id: -1 };

/** A shell that fails the test if virsh is spawned at all. */
function noVirsh(spawned: string[][]): Executor {
  return {
    description: 'no virsh',
    async run(command, args) {
      spawned.push([command, ...args]);
      throw new KumoError('COMMAND_FAILED', `${command} was spawned for a read that has a protocol connection`);
    },
    async open() {
      throw new Error('not used');
    },
  };
}

const noDomain = (h: FakeCall['h']) => reply(h, (w) => w.int(VIR_ERR_NO_DOMAIN).int(10)
  .optional('Domain not found', (x, v) => x.string(v)).int(2)
  .uint(0).uint(0).uint(0).uint(0).int(0).int(0).uint(0), MessageStatus.ERROR);

/** A daemon with web1 running and db1 shut off. */
function answerTwoDomains(xmlFlags: number[]) {
  const doms = [WEB1, DB1];
  return ({ h, body, socket }: FakeCall) => {
    if (h.proc === Proc.CONNECT_GET_ALL_DOMAIN_STATS) {
      socket.write(reply(h, (w) => w.array(doms, (x, d) => {
        encodeDomain(x, d);
        x.array([d.id > 0 ? 1 : 5], (y, s) => y.string('state.state').int(1).int(s));
      }).int(0)));
    } else if (h.proc === Proc.DOMAIN_LOOKUP_BY_UUID) {
      const uuid = body.fixedOpaque(16).toString('hex');
      const d = doms.find((x) => x.uuid.replace(/-/g, '') === uuid);
      socket.write(d ? reply(h, (w) => encodeDomain(w, d)) : noDomain(h));
    } else if (h.proc === Proc.DOMAIN_LOOKUP_BY_NAME) {
      const name = body.string();
      const d = doms.find((x) => x.name === name);
      socket.write(d ? reply(h, (w) => encodeDomain(w, d)) : noDomain(h));
    } else if (h.proc === Proc.DOMAIN_GET_STATE) {
      const name = body.string();
      socket.write(reply(h, (w) => w.int(name === 'web1' ? 1 : 5).int(0)));
    } else if (h.proc === Proc.DOMAIN_GET_XML_DESC) {
      const name = body.string();
      body.fixedOpaque(16);
      body.int();
      xmlFlags.push(body.uint());
      socket.write(reply(h, (w) => w.string(`<domain><name>${name}</name></domain>`)));
    }
  };
}

test('reads over the protocol: list, state and XML answer as virsh does, and no virsh process is spawned', async () => {
  const xmlFlags: number[] = [];
  const daemon = await fakeLibvirtd({ answer: answerTwoDomains(xmlFlags) });
  const conn = new LibvirtConnection(daemon.uri, { callTimeoutMs: 5_000 });
  const spawned: string[][] = [];
  const v = new Virsh(daemon.uri, noVirsh(spawned), undefined, () => 'kvm2', conn);
  try {
    assert.deepEqual(await v.listDomains(), [
      { name: 'web1', uuid: WEB1.uuid, state: 'running' }, { name: 'db1', uuid: DB1.uuid, state: 'shut off' },
    ]);
    assert.equal(await v.domainState(WEB1.uuid), 'running', 'by UUID, as kumo addresses its domains');
    assert.equal(await v.domainState('db1'), 'shut off', 'by name');
    assert.equal(await v.domainState('7f1e6c9a-1111-4c1e-8f0e-3b8f1c2d4e5f'), 'missing');
    assert.equal(await v.dumpXml(WEB1.uuid), '<domain><name>web1</name></domain>');
    assert.equal(await v.dumpXml('db1', true), '<domain><name>db1</name></domain>');
    assert.equal(await v.dumpXml('gone'), undefined);
    assert.deepEqual(xmlFlags, [0, 2], '--inactive is VIR_DOMAIN_XML_INACTIVE');
    assert.deepEqual(spawned, []);
    // What has no protocol procedure yet stays on virsh (the lifecycle writes: libvirt-writes.test.ts).
    await assert.rejects(v.version(), /was spawned/);
    assert.equal(spawned.length, 1);
  } finally {
    await conn.close();
    await daemon.close();
  }
});

test('reads over the protocol: a daemon not running, one dying under a call, and a stalled one read as virsh\'s errors', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-reads-'));
  const missing = `qemu+unix:///system?socket=${dir}/nope`;
  const none = new LibvirtConnection(missing, { callTimeoutMs: 5_000 });
  try {
    const v = new Virsh(missing, noVirsh([]), undefined, () => 'kvm2', none);
    await assert.rejects(v.listDomains(), (e: KumoError) => e.code === 'LIBVIRT_ERROR'
      && e.message === `libvirtd of host "kvm2" (${missing}) does not answer (is libvirtd running?)` && /start libvirtd on host "kvm2"/.test(e.fix ?? ''));
    const bare = new Virsh(missing, noVirsh([]), undefined, undefined, none);
    await assert.rejects(bare.domainState('web1'), (e: KumoError) => e.message === `libvirt at ${missing} does not answer (is libvirtd running?)`);
  } finally {
    await none.close();
    await rm(dir, { recursive: true, force: true });
  }

  let dying: (() => void) | undefined;
  const daemon = await fakeLibvirtd({
    answer: ({ h, socket }) => {
      if (h.proc === Proc.CONNECT_GET_ALL_DOMAIN_STATS) dying?.(); // the daemon goes away with the call unanswered
      if (h.proc === Proc.DOMAIN_LOOKUP_BY_NAME) socket.write(reply(h, (w) => encodeDomain(w, WEB1)));
      // DOMAIN_GET_STATE is never answered: a stalled daemon
    },
  });
  const conn = new LibvirtConnection(daemon.uri, { callTimeoutMs: 30_000 });
  try {
    const v = new Virsh(daemon.uri, noVirsh([]), undefined, () => 'kvm2', conn);
    await assert.rejects(v.domainState('web1', 1_000), (e: KumoError) => e.code === 'TIMEOUT'
      && e.message === `libvirtd of host "kvm2" (${daemon.uri}) did not finish "domstate web1" within 1 s` && /stalled or overloaded/.test(e.fix ?? ''));
    dying = () => void daemon.stop();
    await assert.rejects(v.listDomains(), (e: KumoError) => e.code === 'LIBVIRT_ERROR'
      && /^libvirtd of host "kvm2" \(.*\) stopped answering during "list" \(libvirtd died\?\): it closed the connection/.test(e.message)
      && /start libvirtd on host "kvm2"/.test(e.fix ?? ''));
  } finally {
    await conn.close();
    await daemon.close();
  }
});

test('the Context reads over the protocol where the driver speaks the URI, and stays on virsh for qemu+tls', async () => {
  const home = await mkdtemp(join(tmpdir(), 'kumo-reads-home-'));
  const ctx = openContext({ home });
  try {
    assert.ok(ctx.virsh.protocol, 'this machine\'s libvirt');
    assert.ok(ctx.virshAt('qemu+unix:///system?socket=/srv/lab/run/libvirt-sock').protocol, 'a lab\'s socket');
    assert.ok(ctx.virshAt('qemu+ssh://root@kvm2.example/system').protocol, 'over ssh');
    assert.equal(ctx.virshAt('qemu+tls://kvm3.example/system').protocol, undefined, 'TLS stays on virsh');
    assert.equal(ctx.virshAt('qemu+unix:///system?socket=/srv/lab/run/libvirt-sock').protocol, ctx.libvirt.get('qemu+unix:///system?socket=/srv/lab/run/libvirt-sock'),
      'one connection per URI, owned by the context');
  } finally {
    ctx.close();
    await rm(home, { recursive: true, force: true });
  }
});

test('KUMO_LIBVIRT_PROTOCOL=0 keeps every read on virsh; another value is refused with the fix', async () => {
  const home = await mkdtemp(join(tmpdir(), 'kumo-reads-off-'));
  const saved = process.env.KUMO_LIBVIRT_PROTOCOL;
  try {
    process.env.KUMO_LIBVIRT_PROTOCOL = '0';
    const ctx = openContext({ home });
    try {
      assert.equal(ctx.virsh.protocol, undefined);
    } finally {
      ctx.close();
    }
    process.env.KUMO_LIBVIRT_PROTOCOL = 'yes';
    assert.throws(() => openContext({ home }), (e: KumoError) => e.code === 'INVALID_INPUT' && /KUMO_LIBVIRT_PROTOCOL must be 0 or 1, got "yes"/.test(e.message));
  } finally {
    if (saved === undefined) delete process.env.KUMO_LIBVIRT_PROTOCOL;
    else process.env.KUMO_LIBVIRT_PROTOCOL = saved;
    await rm(home, { recursive: true, force: true });
  }
});
