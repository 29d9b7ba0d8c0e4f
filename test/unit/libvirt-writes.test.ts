import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Executor } from '../../src/exec/exec.js';
import { KumoError } from '../../src/model/errors.js';
import { nicFiltersAvailable } from '../../src/drivers/libvirt/nic-filter.js';
import { SnapshotDriver } from '../../src/drivers/libvirt/snapshots.js';
import { type SlowCall, Virsh } from '../../src/drivers/libvirt/virsh.js';
import { LibvirtConnection } from '../../src/drivers/libvirt/rpc/connection.js';
import { decodeDomain, encodeDomain, MessageStatus, Proc, VIR_ERR_NO_DOMAIN, VIR_ERR_OPERATION_INVALID } from '../../src/drivers/libvirt/rpc/protocol.js';
import { fakeLibvirtd, reply, type FakeCall } from '../helpers/fake-libvirtd.js';

/**
 * The domain lifecycle writes (define, start, shutdown, reboot, destroy, removeDomain) go over
 * the host's protocol connection: the procedures and layouts of libvirt's remote_protocol.x, the
 * flags virsh passes, virsh's refusals and error wording, no virsh process.
 */

const WEB1 = { name: 'web1', uuid: '92b82821-a133-4be0-9b23-78ffd1273585', id: 3 };
const DB1 = { name: 'db1', uuid: '0d5e0f43-6a43-4c1e-8f0e-3b8f1c2d4e5f', id: -1 };
const GONE = '7f1e6c9a-1111-4c1e-8f0e-3b8f1c2d4e5f';

function noVirsh(spawned: string[][]): Executor {
  return {
    description: 'no virsh',
    async run(command, args) {
      spawned.push([command, ...args]);
      throw new KumoError('COMMAND_FAILED', `${command} was spawned for a write that has a protocol connection`);
    },
    async open() {
      throw new Error('not used');
    },
  };
}

const refusal = (h: FakeCall['h'], code: number, message: string) => reply(h, (w) => w.int(code).int(10)
  .optional(message, (x, v) => x.string(v)).int(2)
  .uint(0).uint(0).uint(0).uint(0).int(0).int(0).uint(0), MessageStatus.ERROR);

/** What the scripted daemon was asked to do: procedure, domain (by name), and the flags or XML. */
interface Write { proc: string; dom?: string; flags?: number; xml?: string }

/** web1 running, db1 shut off; writes are recorded and answered as libvirt does. */
function answerWrites(writes: Write[], destroyAnswer?: (h: FakeCall['h']) => Buffer) {
  const doms = [WEB1, DB1];
  return ({ h, body, socket }: FakeCall) => {
    const name = Proc[h.proc] ?? String(h.proc);
    if (h.proc === Proc.DOMAIN_LOOKUP_BY_UUID || h.proc === Proc.DOMAIN_LOOKUP_BY_NAME) {
      const key = h.proc === Proc.DOMAIN_LOOKUP_BY_UUID ? body.fixedOpaque(16).toString('hex') : body.string();
      const d = doms.find((x) => x.uuid.replace(/-/g, '') === key || x.name === key);
      socket.write(d ? reply(h, (w) => encodeDomain(w, d)) : refusal(h, VIR_ERR_NO_DOMAIN, 'Domain not found'));
    } else if (h.proc === Proc.CONNECT_NUM_OF_NWFILTERS) {
      socket.write(reply(h, (w) => w.int(17)));
    } else if (h.proc === Proc.NODE_GET_INFO) {
      // model: 32 XDR chars ("x86_64" then zeros), memory 2 GiB in KiB, 4 CPUs, mhz, nodes, sockets, cores, threads
      socket.write(reply(h, (w) => {
        for (const ch of Buffer.from('x86_64'.padEnd(32, '\0'))) w.int(ch);
        w.uint(0).uint(2 * 1024 * 1024).int(4).int(2400).int(1).int(1).int(4).int(1);
      }));
    } else if (h.proc === Proc.DOMAIN_SNAPSHOT_NUM) {
      writes.push({ proc: name, dom: decodeDomain(body).name, flags: body.uint() });
      socket.write(reply(h, (w) => w.int(0)));
    } else if (h.proc === Proc.DOMAIN_DEFINE_XML_FLAGS) {
      writes.push({ proc: name, xml: body.string(), flags: body.uint() });
      socket.write(reply(h, (w) => encodeDomain(w, DB1)));
    } else if (h.proc === Proc.DOMAIN_SHUTDOWN) {
      writes.push({ proc: name, dom: decodeDomain(body).name });
      socket.write(reply(h));
    } else if ([Proc.DOMAIN_CREATE_WITH_FLAGS, Proc.DOMAIN_DESTROY_FLAGS, Proc.DOMAIN_REBOOT, Proc.DOMAIN_UNDEFINE_FLAGS].includes(h.proc)) {
      const dom = decodeDomain(body);
      writes.push({ proc: name, dom: dom.name, flags: body.uint() });
      if (h.proc === Proc.DOMAIN_DESTROY_FLAGS && destroyAnswer) socket.write(destroyAnswer(h));
      else socket.write(h.proc === Proc.DOMAIN_CREATE_WITH_FLAGS ? reply(h, (w) => encodeDomain(w, { ...dom, id: 7 })) : reply(h));
    }
  };
}

async function withDaemon(answer: (c: FakeCall) => void, use: (v: Virsh, spawned: string[][]) => Promise<void>, notices?: SlowCall[]): Promise<void> {
  const daemon = await fakeLibvirtd({ answer });
  const conn = new LibvirtConnection(daemon.uri, { callTimeoutMs: 30_000 });
  const spawned: string[][] = [];
  try {
    await use(new Virsh(daemon.uri, noVirsh(spawned), notices ? (n) => notices.push(n) : undefined, () => 'kvm2', conn), spawned);
  } finally {
    await conn.close();
    await daemon.close();
  }
}

test('writes over the protocol: define, start, shutdown, reboot, destroy and remove make the calls virsh makes, and no virsh process', async () => {
  const writes: Write[] = [];
  await withDaemon(answerWrites(writes), async (v, spawned) => {
    assert.deepEqual(await v.nodeInfo(), { cpus: 4, memoryMiB: 2048 }, 'what placement asks before a create');
    assert.equal(await nicFiltersAvailable(v), true, 'the question a create asks before its define');
    assert.deepEqual(await new SnapshotDriver(v).names(WEB1.uuid), [], 'what a delete asks first: no snapshots, no listing');
    await v.defineDomain('<domain><name>db1</name></domain>');
    await v.start(DB1.uuid);
    await v.shutdown(WEB1.uuid);
    await v.reboot('web1');
    await v.destroy(WEB1.uuid);
    await v.removeDomain(WEB1.uuid); // running: pulled, then undefined
    await v.removeDomain(DB1.uuid); // shut off: only undefined
    await v.removeDomain(GONE); // absent is fine
    assert.deepEqual(spawned, []);
    assert.deepEqual(writes, [
      { proc: 'DOMAIN_SNAPSHOT_NUM', dom: 'web1', flags: 0 },
      { proc: 'DOMAIN_DEFINE_XML_FLAGS', xml: '<domain><name>db1</name></domain>', flags: 0 },
      { proc: 'DOMAIN_CREATE_WITH_FLAGS', dom: 'db1', flags: 0 },
      { proc: 'DOMAIN_SHUTDOWN', dom: 'web1' },
      { proc: 'DOMAIN_REBOOT', dom: 'web1', flags: 0 },
      { proc: 'DOMAIN_DESTROY_FLAGS', dom: 'web1', flags: 0 },
      { proc: 'DOMAIN_DESTROY_FLAGS', dom: 'web1', flags: 0 },
      // VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM: `undefine --snapshots-metadata --nvram`
      { proc: 'DOMAIN_UNDEFINE_FLAGS', dom: 'web1', flags: 6 },
      { proc: 'DOMAIN_UNDEFINE_FLAGS', dom: 'db1', flags: 6 },
    ]);
  });
});

test('writes over the protocol: virsh\'s own refusals keep virsh\'s words; a domain that stopped during a removal is still removed', async () => {
  const writes: Write[] = [];
  const notRunning = (h: FakeCall['h']) => refusal(h, VIR_ERR_OPERATION_INVALID, 'Requested operation is not valid: domain is not running');
  await withDaemon(answerWrites(writes, notRunning), async (v) => {
    await assert.rejects(v.start(WEB1.uuid), (e: KumoError) => e.code === 'LIBVIRT_ERROR' && e.message === 'libvirt refused: Domain is already active');
    for (const write of [() => v.start(GONE), () => v.shutdown(GONE), () => v.reboot(GONE), () => v.destroy(GONE)]) {
      await assert.rejects(write(), (e: KumoError) => e.code === 'LIBVIRT_ERROR' && e.message === `libvirt refused: failed to get domain '${GONE}'`);
    }
    await assert.rejects(v.destroy('web1'), (e: KumoError) => e.message === 'libvirt refused: Requested operation is not valid: domain is not running');
    await v.removeDomain('web1');
    assert.deepEqual(writes.map((w) => w.proc), ['DOMAIN_DESTROY_FLAGS', 'DOMAIN_DESTROY_FLAGS', 'DOMAIN_UNDEFINE_FLAGS']);
  });
});

test('a libvirtd without an nwfilter driver is told apart over the protocol as with virsh: no filters, no error', async () => {
  await withDaemon(({ h, socket }) => {
    if (h.proc === Proc.CONNECT_NUM_OF_NWFILTERS) socket.write(refusal(h, 3, 'this function is not supported by the connection driver: virConnectNumOfNWFilters'));
  }, async (v, spawned) => {
    assert.equal(await nicFiltersAvailable(v), false);
    assert.deepEqual(spawned, []);
  });
});

test('writes over the protocol: a daemon not running, one dying under a define, and a stalled start read as virsh\'s errors and notices', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-writes-'));
  const missing = `qemu+unix:///system?socket=${dir}/nope`;
  const none = new LibvirtConnection(missing, { callTimeoutMs: 5_000 });
  try {
    const v = new Virsh(missing, noVirsh([]), undefined, () => 'kvm2', none);
    for (const write of [() => v.defineDomain('<domain/>'), () => v.start(WEB1.uuid), () => v.removeDomain(WEB1.uuid)]) {
      await assert.rejects(write(), (e: KumoError) => e.code === 'LIBVIRT_ERROR'
        && e.message === `libvirtd of host "kvm2" (${missing}) does not answer (is libvirtd running?)` && /start libvirtd on host "kvm2"/.test(e.fix ?? ''));
    }
  } finally {
    await none.close();
    await rm(dir, { recursive: true, force: true });
  }

  const notices: SlowCall[] = [];
  const saved = process.env.KUMO_LIBVIRT_TIMEOUT;
  process.env.KUMO_LIBVIRT_TIMEOUT = '6';
  let dying: (() => void) | undefined;
  const daemon = await fakeLibvirtd({
    answer: ({ h, socket }) => {
      if (h.proc === Proc.DOMAIN_LOOKUP_BY_UUID) socket.write(reply(h, (w) => encodeDomain(w, DB1)));
      if (h.proc === Proc.DOMAIN_DEFINE_XML_FLAGS) dying?.(); // gone with the define unanswered
      // DOMAIN_CREATE_WITH_FLAGS is never answered: a stalled daemon
    },
  });
  const conn = new LibvirtConnection(daemon.uri);
  try {
    const v = new Virsh(daemon.uri, noVirsh([]), (n) => notices.push(n), () => 'kvm2', conn);
    await assert.rejects(v.start(DB1.uuid), (e: KumoError) => e.code === 'TIMEOUT'
      && e.message === `libvirtd of host "kvm2" (${daemon.uri}) did not finish "start ${DB1.uuid}" within 6 s` && /stalled or overloaded/.test(e.fix ?? ''));
    assert.equal(notices.length, 1, 'told once, after 5 s');
    assert.equal(notices[0]!.call, `start ${DB1.uuid}`);
    assert.match(notices[0]!.hint ?? '', /probing QEMU's capabilities/);
    dying = () => void daemon.stop();
    await assert.rejects(v.defineDomain('<domain/>'), (e: KumoError) => e.code === 'LIBVIRT_ERROR'
      && /^libvirtd of host "kvm2" \(.*\) stopped answering during "define" \(libvirtd died\?\): it closed the connection/.test(e.message)
      && /start libvirtd on host "kvm2"/.test(e.fix ?? ''));
  } finally {
    if (saved === undefined) delete process.env.KUMO_LIBVIRT_TIMEOUT;
    else process.env.KUMO_LIBVIRT_TIMEOUT = saved;
    await conn.close();
    await daemon.close();
  }
});
