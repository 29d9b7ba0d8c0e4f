import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestEnv, runCli, waitFor, type TestEnv } from '../helpers/env.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { SnapshotService } from '../../src/service/snapshots.js';
import { local } from '../../src/exec/exec.js';
import { virtXmlValidate } from '../helpers/tools.js';

let env: TestEnv;
let svc: InstanceService;
let name: string;
let ip: string;

/**
 * Every boot (bootcmd) the guest starts a second busybox httpd on 8081 whose CGI writes its
 * ?v= value to /var/www/marker.txt (on disk) and /run/ram.txt (tmpfs: only in memory); the
 * stock httpd on 8080 serves both.
 */
const userData = `#cloud-config
write_files:
  - path: /var/www/cgi/cgi-bin/set
    permissions: '0755'
    content: |
      #!/bin/sh
      v=$(printf '%s' "\${QUERY_STRING#v=}" | tr -dc 'A-Za-z0-9')
      echo "$v" > /var/www/marker.txt
      echo "$v" > /run/ram.txt
      sync
      printf 'Content-Type: text/plain\\r\\n\\r\\nset %s\\n' "$v"
bootcmd:
  - mkdir -p /var/www/cgi/cgi-bin
  - ln -sf /run/ram.txt /var/www/ram.txt
  - httpd -p 8081 -h /var/www/cgi
`;

before(async () => {
  env = await makeTestEnv('snap');
  await new ImageService(env.ctx).buildTiny();
  svc = new InstanceService(env.ctx);
  name = `${env.prefix}-a`;
  await svc.create({ name, image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network], userData });
  ip = (await svc.waitReady(name, 180_000)).ip;
});
after(async () => env?.cleanup());

async function get(url: string): Promise<string | undefined> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
  return res?.ok ? (await res.text()).trim() : undefined;
}

/** Sets the marker through the guest's CGI (waiting for 8081 after a boot or a revert). */
async function setMarker(v: string): Promise<void> {
  await waitFor(`the guest's CGI to set ${v}`, () => get(`http://${ip}:8081/cgi-bin/set?v=${v}`), 60_000);
}

/** A file the guest serves on 8080, once it equals `want` (or the last value seen, for the message). */
async function served(path: string, want: string): Promise<string | undefined> {
  let seen: string | undefined;
  try {
    return await waitFor(`${path} to be "${want}"`, async () => {
      seen = await get(`http://${ip}:8080${path}`);
      return seen === want ? seen : undefined;
    }, 60_000);
  } catch {
    return seen;
  }
}

async function ok(...args: string[]): Promise<string> {
  const r = await env.cli(args);
  assert.equal(r.code, 0, `kumo ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const virsh = (...args: string[]) => local.run('virsh', ['-c', 'qemu:///system', ...args]);
const tags = async (file: string) => (await local.run('qemu-img', ['snapshot', '-l', '-U', file])).stdout;
const names = async () => (JSON.parse(await ok('snapshot', 'list', name, '--json')) as { name: string }[]).map((s) => s.name);
const bootCount = async () => (await svc.readConsoleLog(name)).split('Linux version').length;

test('running instance: snapshot, change, revert → disk and memory are back, without a reboot', async (t) => {
  await setMarker('one');
  assert.equal(await served('/marker.txt', 'one'), 'one');
  assert.match(await ok('snapshot', 'create', name, 'live1'), /created snapshot live1 of .* \(running, disks and memory\)/);
  await setMarker('two');
  assert.equal(await served('/ram.txt', 'two'), 'two');
  const boots = await bootCount();

  const started = Date.now();
  assert.match(await ok('snapshot', 'revert', name, 'live1'), /reverted .* to snapshot live1: now running/);
  const revertMs = Date.now() - started;
  assert.equal(await served('/marker.txt', 'one'), 'one');
  // /run is a tmpfs: "one" there can only come from the restored memory.
  assert.equal(await served('/ram.txt', 'one'), 'one');
  assert.equal(await bootCount(), boots, 'the guest must not have booted again');
  t.diagnostic(`revert of a running instance took ${revertMs} ms (CLI included)`);
});

test('shut-off instance: stop, snapshot, start, change, stop, revert, start → the marker is back', async () => {
  await setMarker('off');
  assert.equal((await svc.stop(name, 90_000)).forced, false);
  assert.match(await ok('snapshot', 'create', name, 'first_ss'), /created snapshot first_ss of .* \(shutoff, disks\)/);
  await svc.start(name);
  await svc.waitReady(name, 180_000);
  assert.equal(await served('/marker.txt', 'off'), 'off');
  await setMarker('three');
  assert.equal(await served('/marker.txt', 'three'), 'three');
  await svc.stop(name, 90_000);

  const out = await env.cli(['snapshot', 'revert', name, 'first_ss']);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /now shut off/);
  assert.match(out.stderr, /kumo instance start/);
  assert.equal((await svc.get(name)).state, 'shut off');
  await svc.start(name);
  await svc.waitReady(name, 180_000);
  assert.equal(await served('/marker.txt', 'off'), 'off');
  // Both snapshots survived the stop/start cycles.
  assert.deepEqual(await names(), ['live1', 'first_ss']);
});

test('list: name, local creation time with offset, state; the default name is the epoch; delete removes one', async () => {
  const before = Math.floor(Date.now() / 1000);
  const made = await ok('snapshot', 'create', name);
  const epoch = /created snapshot (\d+) of /.exec(made)?.[1];
  assert.ok(epoch, made);
  assert.ok(Math.abs(Number(epoch) - before) <= 5, `default name ${epoch} is not the creation time (~${before})`);

  // The course's host is in Korea: the same listing there shows +0900.
  const r = await runCli(['snapshot', 'list', name], { env: { ...env.cliEnv, TZ: 'Asia/Seoul' } });
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^ Name\s+Creation Time\s+State$/);
  assert.match(lines[1]!, /^-+$/);
  const rows = lines.slice(2).map((l) => /^ (\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4})\s+(\S+)$/.exec(l));
  assert.deepEqual(rows.map((m) => [m?.[1], m?.[3]]), [['live1', 'running'], ['first_ss', 'shutoff'], [epoch, 'running']]);
  for (const m of rows) assert.match(m![2]!, /\+0900$/);
  const json = JSON.parse(await ok('snapshot', 'list', name, '--json')) as { name: string; creationTime: number }[];
  const seoul = new Date((json[2]!.creationTime + 9 * 3600) * 1000).toISOString().replace('T', ' ').slice(0, 19);
  assert.equal(rows[2]![2], `${seoul} +0900`);
  assert.equal(json[2]!.creationTime, Number(epoch));

  // What libvirt stores of each snapshot (running with memory, shut off) passes libvirt's own
  // schema, read with virsh rather than kumo; a hand-broken copy does not.
  for (const snap of ['live1', 'first_ss', epoch]) {
    const stored = (await virsh('snapshot-dumpxml', name, snap)).stdout;
    const r = await virtXmlValidate(stored, 'domainsnapshot');
    assert.ok(r.ok, `virt-xml-validate refused snapshot ${snap} as libvirt stores it:\n${r.output}\n${stored}`);
    if (snap === epoch) assert.equal((await virtXmlValidate(stored.replace('<state>', '<state>bogus-'), 'domainsnapshot')).ok, false, 'the check can fail');
  }

  assert.match(await ok('snapshot', 'delete', name, epoch), new RegExp(`deleted snapshot ${epoch}`));
  assert.deepEqual(await names(), ['live1', 'first_ss']);
  // The snapshots are internal: they live inside the instance's qcow2 overlay.
  const img = await tags(join(env.home, 'instances', name, 'root.qcow2'));
  assert.match(img, /\blive1\b/);
  assert.match(img, /\bfirst_ss\b/);
  assert.doesNotMatch(img, new RegExp(`\\b${epoch}\\b`));
});

test('bad inputs and refusals: clear errors, nothing made', async () => {
  const expect = async (args: string[], code: number, message: RegExp) => {
    const r = await env.cli(args);
    assert.equal(r.code, code, `kumo ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message);
    if (code !== 2 || !/cannot be used/.test(r.stderr)) assert.match(r.stderr, /fix: /);
  };
  await expect(['snapshot', 'create', `${env.prefix}-nope`], 3, /instance ".*-nope" does not exist/);
  await expect(['snapshot', 'list', `${env.prefix}-nope`], 3, /does not exist/);
  await expect(['snapshot', 'revert', name, 'nope'], 3, /has no snapshot named "nope"[^]*its snapshots: first_ss, live1/);
  await expect(['snapshot', 'delete', name, 'nope'], 3, /has no snapshot named "nope"/);
  await expect(['snapshot', 'create', name, 'live1'], 4, /already has a snapshot named "live1"/);
  await expect(['snapshot', 'create', name, '../x'], 2, /snapshot name "\.\.\/x" is not valid/);
  await expect(['snapshot', 'create', name, 'a b'], 2, /snapshot name "a b" is not valid/);
  await expect(['snapshot', 'create', name, '--', '--atomic'], 2, /is not valid/);
  await expect(['snapshot', 'revert', name, 'live1', '--running', '--paused'], 2, /cannot be used with/);
  assert.deepEqual(await names(), ['live1', 'first_ss']);

  // A second instance, never started: a disk attached since a snapshot makes the revert refuse.
  const gone = `${env.prefix}-b`;
  await svc.create({ name: gone, image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network], start: false });
  await ok('snapshot', 'create', gone, 's0');
  const extra = join(env.home, 'extra.qcow2');
  await env.ctx.qemuImg.createEmpty(extra, 1);
  await virsh('attach-disk', gone, extra, 'vdc', '--subdriver', 'qcow2', '--targetbus', 'virtio', '--config');
  await expect(['snapshot', 'revert', gone, 's0'], 4, new RegExp(`other disks than when snapshot "s0" was taken: reverting would detach ${extra}`));
  assert.equal((await virsh('domblklist', gone)).stdout.includes(extra), true);
  await ok('snapshot', 'create', gone, 's1');
  assert.match(await tags(extra), /\bs1\b/);
  // deleteAll (for instance deletion) takes the snapshot data out of a disk that outlives the instance.
  assert.equal(await new SnapshotService(env.ctx).deleteAll(gone), 2);
  assert.doesNotMatch(await tags(extra), /\bs1\b/);
  assert.equal((await virsh('snapshot-list', gone, '--name')).stdout.trim(), '');

  // An instance whose domain was removed behind kumo's back.
  await virsh('undefine', gone);
  await expect(['snapshot', 'create', gone, 's1'], 3, /no domain ".*-b" any more[^]*kumo instance delete/);
  await expect(['snapshot', 'list', gone], 3, /no domain/);
  await svc.delete(gone);
});

test('deleting the instance deletes its snapshots', async () => {
  assert.equal((await svc.get(name)).state, 'running');
  assert.ok(existsSync(`/var/lib/libvirt/qemu/snapshot/${name}`), 'libvirt keeps snapshot metadata there');
  await ok('instance', 'delete', name);
  assert.equal(existsSync(`/var/lib/libvirt/qemu/snapshot/${name}`), false, 'libvirt\'s snapshot metadata is gone too');
  const r = await local.run('virsh', ['-c', 'qemu:///system', 'snapshot-list', name], { allowFailure: true });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /failed to get domain/);
  assert.equal(existsSync(join(env.home, 'instances', name)), false);
  assert.deepEqual(readdirSync(join(env.home, 'instances')), []);
  const list = await env.cli(['snapshot', 'list', name]);
  assert.equal(list.code, 3);
});
