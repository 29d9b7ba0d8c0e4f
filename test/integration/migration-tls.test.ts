import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestEnv, sleep, waitFor, type TestEnv } from '../helpers/env.js';
import { pollHttpInNetns } from '../helpers/lab.js';
import { local } from '../../src/exec/exec.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { LabService } from '../../src/service/lab.js';
import { MigrationService } from '../../src/service/migration.js';
import { KumoError } from '../../src/model/errors.js';

/**
 * `kumo instance migrate --encrypted` on the one-machine lab: two hypervisors whose libvirtds
 * have a throwaway site CA's certificates (the lab's migration_tls), one tiny instance holding
 * a secret 1 MiB times in RAM (/dev/shm). The migration stream is captured with tcpdump in the
 * destination node's namespace: in plain TCP the secret is there (positive control); with
 * --encrypted it is not, and the stream opens with a TLS handshake instead of QEMU's "QEVM".
 */
let env: TestEnv;
let pki: string;
let name: string;
let ip: string;
const secret = `kumo-secret-${randomBytes(12).toString('hex')}`;
const NODES = { kvm1: '10.5.2.11', kvm2: '10.5.2.12' } as const;
type Node = keyof typeof NODES;

const labYaml = (labName: string, tlsDir: string) => `# two hypervisors on one segment, with the site CA's migration certificates
name: ${labName}
segments:
  backend: { cidr: 10.5.2.0/24, instances: true }
nodes:
  kvm1: { roles: [hypervisor], links: { backend: ${NODES.kvm1} } }
  kvm2: { roles: [hypervisor], links: { backend: ${NODES.kvm2} } }
migration_tls: ${tlsDir}
`;

/** The secret, 1 MiB of it, in the guest's RAM (tmpfs); its size served for the test to see. */
const userData = `#cloud-config
runcmd:
  - "yes ${secret} | head -c 1048576 > /dev/shm/secret"
  - "wc -c < /dev/shm/secret > /var/www/secret-bytes"
`;

before(async () => {
  env = await makeTestEnv('tls');
  name = `${env.prefix}-s`;
  const tcpdump = await local.run('which', ['tcpdump'], { allowFailure: true });
  assert.equal(tcpdump.code, 0, 'this test captures the migration stream with tcpdump: apt-get install tcpdump (scripts/bootstrap.sh --test installs it)');
  await new ImageService(env.ctx).buildTiny();
  pki = join(env.home, 'pki');
  await makeSitePki(pki);
  const labFile = join(env.home, 'lab.yaml');
  await writeFile(labFile, labYaml(env.prefix, pki));
  const up = await env.cli(['lab', 'up', labFile], { timeoutMs: 600_000 });
  assert.equal(up.code, 0, up.stderr);
});

after(async () => {
  // Pass or fail: the lab (its instance, daemons, namespaces) goes, then the test's own world.
  if (env) await new LabService(env.ctx).down().catch(() => undefined);
  await env?.cleanup();
});

test('the certificate check reads the lab daemon\'s own qemu.conf and folder, not the host\'s', async () => {
  // Before: a lab node's shell (its network namespace) read the host's /etc/libvirt/qemu.conf
  // and looked in /etc/pki/qemu, which the lab's daemons never use.
  await new MigrationService(env.ctx).checkTls('kvm1', 'kvm2');
  await new MigrationService(env.ctx).checkTls('kvm2', 'kvm1');
  const conf = await readFile(join(env.home, 'lab', 'libvirt', 'kvm2', 'etc', 'qemu.conf'), 'utf8');
  assert.match(conf, /^migrate_tls_x509_cert_dir = "\/etc\/libvirt\/pki\/qemu"$/m);
});

test('a plain migration carries the guest\'s RAM in the clear: the secret is in the capture (positive control)', async (t) => {
  const svc = new InstanceService(env.ctx);
  await svc.create({ name, image: 'tiny', vcpus: 1, ramMiB: 256, diskGiB: 1, password: 'x', userData, host: 'kvm1' });
  ip = (await svc.waitReady(name, 300_000)).ip;
  const bytes = await waitFor('the secret in the guest\'s RAM', () => fromNode('kvm2', `http://${ip}:8080/secret-bytes`), 60_000);
  assert.equal(bytes.trim(), '1048576');

  const { stream, result } = await migrateCapturing(t, 'kvm2', []);
  assert.equal(stream.clientToServer.subarray(0, 4).toString('latin1'), 'QEVM', 'the stream is QEMU\'s, unencrypted');
  const seen = count(stream.clientToServer, secret);
  t.diagnostic(`plain: ${stream.clientToServer.length} bytes captured, the secret ${seen} times; ${result}`);
  assert.ok(seen > 1000, `the secret crossed the wire in the clear (${seen} times)`);
});

test('--encrypted: the same guest moves over TLS, the secret is nowhere in the capture, and it keeps serving', async (t) => {
  const { stream, result } = await migrateCapturing(t, 'kvm1', ['--encrypted']);
  const [c, s] = [stream.clientToServer, stream.serverToClient];
  // A TLS handshake record (0x16, version 3.x) opens each direction: ClientHello, ServerHello.
  assert.deepEqual([...c.subarray(0, 2)], [0x16, 0x03], `the source opens with a TLS ClientHello (got ${c.subarray(0, 8).toString('hex')})`);
  assert.deepEqual([...s.subarray(0, 2)], [0x16, 0x03], `the destination answers with a TLS ServerHello (got ${s.subarray(0, 8).toString('hex')})`);
  t.diagnostic(`encrypted: ${c.length} bytes captured; ${result}`);
  assert.ok(c.length > 1024 * 1024, 'the guest\'s memory did cross (more than 1 MiB captured)');
  assert.equal(count(c, secret), 0, 'the secret is not in the encrypted stream');
  assert.equal(count(c, 'QEVM'), 0, 'no plain QEMU stream either');
  assert.equal((await fromNode('kvm2', `http://${ip}:8080/secret-bytes`))?.trim(), '1048576', 'the guest still holds its RAM');
});

test('--encrypted to a hypervisor without certificates is refused before anything moves', async () => {
  const stateDir = join(env.home, 'lab', 'libvirt', 'kvm2');
  const key = join(stateDir, 'etc', 'pki', 'qemu', 'server-key.pem');
  await rename(key, `${key}.away`);
  try {
    await assert.rejects(new MigrationService(env.ctx).migrate(name, 'kvm2', { encrypted: true }), (e: unknown) => e instanceof KumoError
      && e.code === 'INVALID_INPUT' && e.message.includes('destination host kvm2 lacks server-key.pem in /etc/libvirt/pki/qemu'));
    assert.equal(env.ctx.instances.get(name)?.host, 'kvm1');
  } finally {
    await rename(`${key}.away`, key);
  }
});

// --- helpers ---------------------------------------------------------------------------

/** A throwaway site CA and, per node, a server certificate naming its migration address and a client certificate. */
async function makeSitePki(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const ssl = (args: string[]) => local.run('openssl', args, { timeoutMs: 60_000 });
  const [caKey, caCert] = [join(dir, 'ca-key.pem'), join(dir, 'ca-cert.pem')];
  await ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${env.prefix} site CA`, '-keyout', caKey, '-out', caCert,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  for (const [node, addr] of Object.entries(NODES)) {
    const d = join(dir, node);
    await mkdir(d);
    await writeFile(join(d, 'ca-cert.pem'), await readFile(caCert));
    for (const [kind, usage, san] of [['server', 'serverAuth', `,IP:${addr},DNS:${node}`], ['client', 'clientAuth', '']] as const) {
      await ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${node}`, '-CA', caCert, '-CAkey', caKey,
        '-keyout', join(d, `${kind}-key.pem`), '-out', join(d, `${kind}-cert.pem`),
        '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment',
        '-addext', `extendedKeyUsage=${usage}`, '-addext', `subjectAltName=DNS:${node}${san}`]);
    }
  }
}

/** One GET from a lab node's namespace; undefined when it does not answer. */
async function fromNode(node: Node, url: string): Promise<string | undefined> {
  const r = await new NetnsExecutor(`${env.prefix}-${node}`).run('curl', ['-sf', '--max-time', '3', url], { allowFailure: true });
  return r.code === 0 ? r.stdout : undefined;
}

/**
 * `kumo instance migrate NAME --to DEST [flags]` while tcpdump records every TCP packet to the
 * destination's migration ports in its namespace, and the other node polls the guest.
 */
async function migrateCapturing(t: { diagnostic(m: string): void }, dest: Node, flags: string[]) {
  const other: Node = dest === 'kvm1' ? 'kvm2' : 'kvm1';
  const conf = await readFile(join(env.home, 'lab', 'libvirt', dest, 'etc', 'qemu.conf'), 'utf8');
  const [min, max] = ['migration_port_min', 'migration_port_max'].map((k) => Number(new RegExp(`^${k} = (\\d+)$`, 'm').exec(conf)?.[1]));
  assert.ok(min && max, `the destination's migration ports are in its qemu.conf (${min}-${max})`);
  const file = join(env.home, `${dest}${flags.join('')}.pcap`);
  const capture = await startCapture(`${env.prefix}-${dest}`, file, `tcp and host ${NODES[dest]} and portrange ${min}-${max}`);
  const poll = pollHttpInNetns(`${env.prefix}-${other}`, `http://${ip}:8080/secret-bytes`, 200, 3000);
  let moved: { code: number; stdout: string; stderr: string };
  let migratedAt: number;
  try {
    await sleep(1_000);
    moved = await env.cli(['instance', 'migrate', name, '--to', dest, ...flags], { timeoutMs: 300_000 });
    migratedAt = Date.now();
    await sleep(3_000);
  } finally {
    await capture.stop();
  }
  const stats = await poll.stop();
  t.diagnostic(`polled from ${other}: ${stats.ok}/${stats.requests} answered, longest gap ${stats.longestGapMs} ms; tcpdump: ${capture.summary().trim().replace(/\n/g, '; ')}`);
  assert.equal(moved.code, 0, `the migration succeeded: ${moved.stderr}`);
  assert.equal(env.ctx.instances.get(name)?.host, dest);
  assert.ok(stats.lastOkAt !== undefined && stats.lastOkAt > migratedAt, 'the guest kept serving after the move');
  const stream = migrationStream(await readFile(file), NODES[dest], min!, max!);
  return { stream, result: moved.stdout.trim() };
}

/** tcpdump in a namespace, writing every packet whole; resolves once it listens. */
async function startCapture(netns: string, file: string, filter: string) {
  const child = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', 'tcpdump', '-i', 'br-backend', '-s', '0', '-B', '65536', '-U', '-Z', 'root', '-w', file, filter],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
  const exited = new Promise<void>((done) => child.once('close', () => done()));
  await waitFor('tcpdump to listen', async () => {
    if (child.exitCode !== null) throw new Error(`tcpdump ended: ${err}`);
    return /listening on/.test(err) ? true : undefined;
  }, 20_000);
  return {
    async stop() {
      if (child.exitCode === null) child.kill('SIGINT');
      await exited;
    },
    summary: () => err.split('\n').filter((l) => /packets/.test(l)).join('\n'),
  };
}

/**
 * The TCP payloads of a pcap (Ethernet) between the source and `dest`'s migration ports, in
 * capture order, by direction. Retransmissions may repeat bytes: enough to search, not to decode.
 */
function migrationStream(pcap: Buffer, dest: string, min: number, max: number): { clientToServer: Buffer; serverToClient: Buffer } {
  assert.equal(pcap.readUInt32LE(0), 0xa1b2c3d4, 'a little-endian pcap');
  assert.equal(pcap.readUInt32LE(20), 1, 'captured on an Ethernet link');
  const up: Buffer[] = [];
  const down: Buffer[] = [];
  for (let at = 24; at + 16 <= pcap.length;) {
    const len = pcap.readUInt32LE(at + 8);
    const frame = pcap.subarray(at + 16, at + 16 + len);
    at += 16 + len;
    if (frame.readUInt16BE(12) !== 0x0800) continue; // IPv4 only
    const ipHdr = frame.subarray(14);
    const ihl = (ipHdr[0]! & 0x0f) * 4;
    if (ipHdr[9] !== 6) continue;
    const total = ipHdr.readUInt16BE(2);
    const tcp = ipHdr.subarray(ihl, total);
    if (tcp.length < 20) continue;
    const payload = tcp.subarray((tcp[12]! >> 4) * 4);
    const dst = [...ipHdr.subarray(16, 20)].join('.');
    const [sport, dport] = [tcp.readUInt16BE(0), tcp.readUInt16BE(2)];
    if (!payload.length) continue;
    if (dst === dest && dport >= min && dport <= max) up.push(payload);
    else if (sport >= min && sport <= max) down.push(payload);
  }
  return { clientToServer: Buffer.concat(up), serverToClient: Buffer.concat(down) };
}

function count(haystack: Buffer, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}
