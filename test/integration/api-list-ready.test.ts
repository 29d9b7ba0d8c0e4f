import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { API, apiToken, ApiClient, listenApi, type TestApi } from '../helpers/api.js';
import type { Executor } from '../../src/exec/exec.js';
import { KumoError } from '../../src/model/errors.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';
import { dhcpLeasesOver } from '../../src/drivers/libvirt/protocol-reads.js';
import { LibvirtConnection } from '../../src/drivers/libvirt/rpc/connection.js';
import { defineDomain, lookupByUuid, undefineDomain } from '../../src/drivers/libvirt/rpc/domains.js';
import { openContext, type Context } from '../../src/service/context.js';

/**
 * The list kept ready against the machine's real libvirtd, on the test's own isolated network:
 * NETWORK_GET_DHCP_LEASES answers what `virsh net-dhcp-leases` does (libvirt's own lease table,
 * which the test fills as a DHCP server would), and the API's list shows those addresses and
 * the states libvirt's events bring, with no process spawned by any list.
 */
let env: TestEnv;
let conn: LibvirtConnection;
let leaseFile: string;
const MAC_1 = '52:54:00:7a:00:01';
const MAC_2 = '52:54:00:7a:00:02';

before(async () => {
  env = await makeTestEnv('lready');
  conn = new LibvirtConnection('qemu:///system', { callTimeoutMs: 20_000 });
  // libvirt reads a network's leases from the status file its dnsmasq's helper keeps, per bridge.
  leaseFile = join('/var/lib/libvirt/dnsmasq', `${env.prefix}br`.slice(0, 15) + '.status');
  const expiry = Math.floor(Date.now() / 1000) + 3_600;
  await writeFile(leaseFile, JSON.stringify([
    { 'ip-address': '10.99.0.11', 'mac-address': MAC_1, hostname: 'first', 'expiry-time': expiry },
    { 'ip-address': '10.99.0.12', 'mac-address': MAC_2, 'expiry-time': expiry },
  ]));
});

after(async () => {
  await conn?.close();
  if (leaseFile) await rm(leaseFile, { force: true });
  await env?.cleanup();
});

test('NETWORK_GET_DHCP_LEASES answers what virsh net-dhcp-leases does; an unknown network has none', async () => {
  const byVirsh = await new Virsh('qemu:///system').dhcpLeases(env.network); // no protocol connection: virsh
  const byProtocol = await dhcpLeasesOver(conn, env.network);
  const sorted = (l: { mac: string }[]) => [...l].sort((a, b) => a.mac.localeCompare(b.mac));
  assert.deepEqual(sorted(byProtocol), sorted(byVirsh));
  assert.deepEqual(sorted(byProtocol), [{ mac: MAC_1, ipv4: '10.99.0.11', hostname: 'first' }, { mac: MAC_2, ipv4: '10.99.0.12' }]);
  assert.deepEqual(await dhcpLeasesOver(conn, `${env.prefix}-nonet`), []);
  assert.deepEqual(await new Virsh('qemu:///system').dhcpLeases(`${env.prefix}-nonet`), []);
});

test('the API list follows libvirt\'s events and shows the leases, and no list spawns a process', async () => {
  const spawned: string[][] = [];
  const spy: Executor = {
    description: 'spy', onThisMachine: true,
    async run(command, args) {
      spawned.push([command, ...args]);
      throw new KumoError('COMMAND_FAILED', `${command} was spawned during an instance list`);
    },
    async open() { throw new Error('not used'); },
  };
  // The same store as the test's env, read by a server whose every command is refused and recorded.
  let ctx: Context | undefined;
  let api: TestApi | undefined;
  let client: ApiClient | undefined;
  const name = `${env.prefix}-l1`;
  const uuid = randomUUID();
  try {
    ctx = openContext({ home: env.home, exec: spy });
    ctx.images.upsert({ name: 'tiny', os: 'stand-in', disk: join(env.home, 'tiny.qcow2'), format: 'qcow2', virtualSizeBytes: 1 << 26, source: 'test', createdAt: new Date().toISOString() });
    ctx.instances.insert({ name, uuid, host: 'local', image: 'tiny', vcpus: 1, ramMiB: 16, diskGiB: 1, networks: [env.network], nics: [{ mac: MAC_1, network: env.network }], dataDisks: [], sshKeys: [], createdAt: new Date().toISOString(), project: 'default' });
    api = await listenApi(ctx, { monitor: false, webRoot: join(env.home, 'no-web') });
    client = new ApiClient(api.base, apiToken(ctx, 'lready'));
    const c = client;
    // Each answer is checked against the OpenAPI document too (the body is made once, not per request).
    const listed = async () => ((await c.call('GET', `${API}/instances`)).body as { name: string; state: string; stateSource: string; nics: { ipv4?: string }[] }[]).find((i) => i.name === name)!;
    const missing = await waitFor('the watch to list the host', async () => { const i = await listed(); return i.stateSource === 'listing' ? i : undefined; }, 60_000);
    assert.equal(missing.state, 'missing');
    assert.equal(missing.nics[0]!.ipv4, '10.99.0.11', 'the lease, read over the protocol');
    // Defined behind kumo's back: libvirt's Defined event reaches the next list.
    await defineDomain(conn, `<domain type='qemu'><name>${name}</name><uuid>${uuid}</uuid><memory unit='MiB'>16</memory><os><type arch='x86_64'>hvm</type></os></domain>`);
    const defined = await waitFor('the Defined event in the list', async () => { const i = await listed(); return i.state === 'shut off' ? i : undefined; }, 30_000);
    assert.equal(defined.stateSource, 'events');
    await undefineDomain(conn, await lookupByUuid(conn, uuid));
    await waitFor('the Undefined event in the list', async () => { const i = await listed(); return i.state === 'missing' ? i : undefined; }, 30_000);
    assert.deepEqual(spawned, [], 'no list spawned a process');
  } finally {
    client?.close();
    await api?.app.close();
    ctx?.instances.delete(name);
    ctx?.close();
  }
});
