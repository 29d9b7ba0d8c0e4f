import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { local } from '../../src/exec/exec.js';
import { CLI, makeTestEnv, testCache, waitFor, type TestEnv } from '../helpers/env.js';

/**
 * The Debian package (scripts/package.sh): built once from this checkout (version N), then
 * version N+1 made from it by repacking with a bumped version and one more store migration,
 * as a release would bring. Installs N, makes records with /usr/bin/kumo, upgrades to N+1 and
 * finds them at the new schema, then sees a downgrade to N refused with the store untouched.
 *
 * The machine is not disturbed: the installed kumo keeps its state in this run's folder (the
 * test writes /etc/kumo/kumo.conf first; postinst keeps an existing one), the test refuses to
 * run where a kumo package or /etc/kumo already exists, and purges the package at the end,
 * pass or fail (purging removes the run's state folder and /etc/kumo).
 */

const ROOT = join(import.meta.dirname, '../../..');
let env: TestEnv;
let work: string;
let home: string;
let debN: string;
let debNext: string;
let versionN: string;
let versionNext: string;
let schemaN: number;
let installed = false;
/** Set once the checks found no kumo of someone else's: only then does the cleanup purge and remove /etc/kumo. */
let ours = false;
const children: ChildProcess[] = [];

/** The environment an operator runs /usr/bin/kumo in: none of the test's KUMO_* variables. */
const operatorEnv = (): NodeJS.ProcessEnv =>
  ({ ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KUMO_'))), LANG: 'C.UTF-8' });

async function kumo(args: string[]) {
  return local.run('/usr/bin/kumo', args, { env: operatorEnv(), allowFailure: true, timeoutMs: 120_000 });
}

const dpkg = (args: string[]) => local.run('dpkg', args, { allowFailure: true, timeoutMs: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });

/** dpkg's status of kumo ('' when dpkg knows no such package). */
async function dpkgStatus(): Promise<string> {
  return (await local.run('dpkg-query', ['-W', '-f=${Status}', 'kumo'], { allowFailure: true })).stdout.trim();
}
const knownToDpkg = (status: string) => status !== '' && !status.endsWith('not-installed');

async function installedVersion(): Promise<string | undefined> {
  const r = await local.run('dpkg-query', ['-W', '-f=${Status} ${Version}', 'kumo'], { allowFailure: true });
  return r.code === 0 && / installed /.test(r.stdout) ? r.stdout.trim().split(' ').pop() : undefined;
}

const sha256 = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex');

/** Version N+1 from N's files: the version bumped everywhere it is written, and one migration appended to the store's list. */
async function makeNext(deb: string, next: string): Promise<string> {
  const tree = join(work, 'next');
  await local.run('dpkg-deb', ['-R', deb, tree]);
  const control = join(tree, 'DEBIAN', 'control');
  await writeFile(control, (await readFile(control, 'utf8')).replace(/^Version: .*$/m, `Version: ${next}`));
  const preinst = join(tree, 'DEBIAN', 'preinst');
  await writeFile(preinst, (await readFile(preinst, 'utf8')).replace(/^KUMO_VERSION=.*$/m, `KUMO_VERSION=${next}`).replace(/^KUMO_SCHEMA=.*$/m, `KUMO_SCHEMA=${schemaN + 1}`));
  const pkgJson = join(tree, 'usr/lib/kumo/package.json');
  const pkg = JSON.parse(await readFile(pkgJson, 'utf8')) as { version: string };
  await writeFile(pkgJson, JSON.stringify({ ...pkg, version: next }, null, 2));
  // The store's migrations in the bundle (src/store/db.ts): the list that starts with the flavors table.
  const bin = join(tree, 'usr/lib/kumo/dist/bin');
  let patched = 0;
  for (const f of await readdir(bin)) {
    const file = join(bin, f);
    const js = await readFile(file, 'utf8');
    const start = js.indexOf('var MIGRATIONS = [\n  `CREATE TABLE flavors (');
    if (start < 0) continue;
    const end = js.indexOf('\n];', start);
    const step = ",\n  \"CREATE TABLE upgrade_probe (note TEXT NOT NULL); INSERT INTO upgrade_probe VALUES ('added by the upgrade')\"";
    await writeFile(file, js.slice(0, end) + step + js.slice(end));
    patched++;
  }
  assert.equal(patched, 1, 'exactly one chunk of the bundle holds the store\'s migrations');
  const out = join(work, `kumo_${next}.deb`);
  await local.run('dpkg-deb', ['--root-owner-group', '-Znone', '--build', tree, out]);
  await rm(tree, { recursive: true, force: true });
  return out;
}

before(async () => {
  // Never over a kumo someone installed: its state and config are not this test's to touch.
  const present = await installedVersion();
  const status = await dpkgStatus();
  if (present || knownToDpkg(status)) {
    throw new Error(`a kumo package is on this machine (dpkg: kumo ${present ?? ''} ${status}): remove it (dpkg --purge kumo) or run this test elsewhere`);
  }
  for (const p of ['/etc/kumo', '/usr/lib/kumo', '/usr/bin/kumo']) {
    if (existsSync(p)) throw new Error(`${p} exists and belongs to no kumo package: move it away before this test installs one`);
  }
  ours = true;
  env = await makeTestEnv('pkg');
  work = await mkdtemp(`/tmp/kumo-test-${env.prefix}-pkg-`);
  await chmod(work, 0o755); // QEMU (libvirt-qemu) must reach the instance's disks in the state folder
  home = join(work, 'state');
  const r = await local.run(join(ROOT, 'scripts/package.sh'), ['--compress', 'none', '--out', work], { timeoutMs: 300_000 });
  debN = r.stdout.trim().split('\n').pop()!;
  versionN = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  versionNext = `${versionN}.1`;
  schemaN = (JSON.parse((await local.run('node', [CLI, 'store', 'status', '--json'], { env: { ...env.cliEnv, KUMO_HOME: join(work, 'probe') } })).stdout) as { known: number }).known;
  debNext = await makeNext(debN, versionNext);
  // The installed kumo's state goes to this run's folder: postinst keeps an existing kumo.conf.
  await mkdir('/etc/kumo');
  // The tiny image's build cache is the suite's shared one (KUMO_TEST_CACHE): the build only links its files.
  await writeFile('/etc/kumo/kumo.conf', `# this run's kumo.conf (test/integration/package.test.ts)\nKUMO_HOME=${home}\nKUMO_CACHE=${testCache()}\n`);
});

after(async () => {
  // Pass or fail: the run's domain and network first (its disks are in the state purge removes),
  // then the package, its config and state, the units' enablement, the run's files.
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await env?.cleanup();
  if (!ours) return; // another kumo was found: not this test's to touch
  if (installed || knownToDpkg(await dpkgStatus())) await dpkg(['--purge', 'kumo']);
  await rm('/etc/kumo', { recursive: true, force: true });
  if (work) await rm(work, { recursive: true, force: true });
});

test('the package holds the CLI, the units, the default config and the examples, for this machine\'s architecture', async () => {
  const arch = (await local.run('dpkg', ['--print-architecture'])).stdout.trim();
  assert.ok(debN.endsWith(`kumo_${versionN}_${arch}.deb`), debN);
  const files = (await local.run('dpkg-deb', ['-c', debN])).stdout;
  for (const f of ['./usr/bin/kumo', './usr/lib/kumo/dist/bin/kumo.js', './usr/lib/kumo/dist/web/index.html', './usr/lib/kumo/package.json',
    './usr/lib/kumo/node_modules/better-sqlite3/build/Release/better_sqlite3.node', './lib/systemd/system/kumo-api.service',
    './lib/systemd/system/kumo-monitor.service', './lib/systemd/system/kumo-ha.service', './lib/systemd/system/kumo-lab.service',
    './usr/share/kumo/kumo.conf', './usr/share/doc/kumo/examples/course-datacenter.yaml',
    './usr/share/man/man1/kumo.1.gz', './usr/share/man/man1/kumo-instance.1.gz',
    './usr/share/bash-completion/completions/kumo', './usr/share/zsh/vendor-completions/_kumo']) {
    assert.match(files, new RegExp(` ${f.replace(/[.]/g, '\\.')}\n`), `${f} is in the package`);
  }
  assert.doesNotMatch(files, /node_modules\/(typescript|vite|esbuild|playwright-core)\//, 'no devDependency is packed');
  const control = (await local.run('dpkg-deb', ['-f', debN, 'Depends'])).stdout;
  for (const dep of ['nodejs (>= 20)', 'libvirt-daemon-system', 'qemu-system-x86', 'haproxy', 'nfs-ganesha']) assert.ok(control.includes(dep), dep);
});

test('version N installs: KUMO_HOME from /etc/kumo/kumo.conf with the security model\'s modes, units that systemd accepts', async () => {
  const r = await dpkg(['-i', debN]);
  installed = true;
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(await installedVersion(), versionN);
  assert.equal(statSync(home).mode & 0o7777, 0o711);
  assert.equal(statSync(join(home, 'kumo.db')).mode & 0o777, 0o600);
  const verify = await local.run('systemd-analyze', ['verify', '--man=no', ...['api', 'monitor', 'ha', 'lab'].map((u) => `/lib/systemd/system/kumo-${u}.service`)], { allowFailure: true });
  assert.equal(verify.code, 0, verify.stderr);
  // The default config documents every site setting kumo knows.
  const conf = await readFile('/usr/share/kumo/kumo.conf', 'utf8');
  const settings = JSON.parse((await kumo(['config', 'list', '--json'])).stdout) as { key: string }[];
  for (const s of settings) assert.match(conf, new RegExp(`^#${s.key.replace(/[.]/g, '\\.')}=`, 'm'), s.key);
  assert.match(conf, /^#KUMO_HOME=\/var\/lib\/kumo$/m);
});

test('records and an instance made with version N survive the upgrade to N+1, whose migration runs once', async () => {
  const p = env.prefix;
  let token = '';
  const pw = join(work, 'pw');
  await writeFile(pw, 'a-long-enough-password\n', { mode: 0o600 });
  const disk = join(work, 'disk.qcow2');
  await local.run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
  for (const args of [
    ['flavor', 'create', `${p}f`, '--vcpus', '1', '--ram', '256', '--disk-size', '1'],
    ['project', 'create', `${p}p`, '--max-instances', '2'],
    ['user', 'create', `${p}u`, '--project', `${p}p`, '--role', 'member', '--password-file', pw],
    ['token', 'create', `${p}t`, '--project', `${p}p`, '--role', 'reader'],
    ['image', 'import', `${p}i`, disk, '--os', 'upgrade probe'],
    ['image', 'build', 'tiny'],
    ['instance', 'create', `${p}vm`, '--image', 'tiny', '--flavor', `${p}f`, '--password-file', pw, '--network', env.network],
  ]) {
    const r = await kumo(args);
    assert.equal(r.code, 0, `kumo ${args.join(' ')}: ${r.stderr}`);
    if (args[0] === 'token') token = r.stdout.trim();
  }
  const before = JSON.parse((await kumo(['store', 'status', '--json'])).stdout) as { schema: number; migratedBy: string };
  assert.deepEqual([before.schema, before.migratedBy], [schemaN, versionN]);

  const r = await dpkg(['-i', debNext]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(await installedVersion(), versionNext);
  const after = JSON.parse((await kumo(['store', 'status', '--json'])).stdout) as { schema: number; migratedBy: string; kumo: string };
  assert.deepEqual([after.schema, after.migratedBy, after.kumo], [schemaN + 1, versionNext, versionNext]);
  const list = async (what: string) => JSON.parse((await kumo([what, 'list', '--json'])).stdout) as { name: string }[];
  for (const [what, name] of [['flavor', 'f'], ['project', 'p'], ['user', 'u'], ['token', 't'], ['image', 'i'], ['instance', 'vm']] as const) {
    assert.ok((await list(what)).some((x) => x.name === `${p}${name}`), `${what} ${p}${name} is still there`);
  }
  // The image's disk came along too, and the instance kept running through the upgrade.
  const image = (await list('image')).find((x) => x.name === `${p}i`) as unknown as { disk: string };
  assert.ok(existsSync(image.disk), image.disk);
  const vm = (await list('instance')).find((x) => x.name === `${p}vm`) as unknown as { state: string } | undefined;
  assert.equal(vm?.state, 'running', JSON.stringify(vm));
  // The token made by N opens N+1's API, started by hand as on a machine without systemd.
  const serve = spawn('/usr/bin/kumo', ['serve', '--port', '0', '--monitor-interval', '0', '--no-ha'], { env: operatorEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(serve);
  let out = '';
  serve.stdout.on('data', (d: Buffer) => { out += d; });
  const url = await waitFor('the installed kumo serve to listen', async () => /kumo API on (http:\/\/127\.0\.0\.1:\d+)\/api\/v1/.exec(out)?.[1], 60_000);
  const res = await fetch(`${url}/api/v1/flavors`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, await res.text());
  // Stopped for good before the next test compares the store's bytes (closing it checkpoints the log).
  const exited = new Promise((resolve) => serve.once('exit', resolve));
  serve.kill('SIGTERM');
  await exited;
});

test('a downgrade to N is refused, naming both versions and the fix; the store and N+1 stay as they were', async () => {
  const db = join(home, 'kumo.db');
  const digest = await sha256(db);
  const r = await dpkg(['-i', debN]);
  assert.notEqual(r.code, 0, 'the downgrade must fail');
  const said = r.stderr + r.stdout;
  assert.match(said, new RegExp(`kumo ${versionN.replace(/[.]/g, '\\.')} refuses to install: the store ${db} is at schema ${schemaN + 1}, migrated by kumo ${versionNext.replace(/[.]/g, '\\.')}`));
  assert.match(said, /fix: keep \(or reinstall\) kumo /);
  assert.equal(await installedVersion(), versionNext);
  assert.equal(await sha256(db), digest, 'the store is byte for byte what it was');
  assert.equal((await kumo(['flavor', 'list', '--json'])).code, 0, 'N+1 still works');
  // kumo N itself (this checkout's CLI) refuses the newer store too, before writing to it.
  const old = await local.run('node', [CLI, 'flavor', 'list'], { env: { ...env.cliEnv, KUMO_HOME: home }, allowFailure: true });
  assert.notEqual(old.code, 0);
  assert.match(old.stderr, new RegExp(`is at schema ${schemaN + 1}, migrated by kumo ${versionNext.replace(/[.]/g, '\\.')}; this kumo \\(${versionN.replace(/[.]/g, '\\.')}\\) knows schemas up to ${schemaN}`));
  assert.equal(await sha256(db), digest);
});

test('with kumo removed (its state kept), installing N over the newer store is refused all the same', async () => {
  const db = join(home, 'kumo.db');
  // The instance goes first, as an operator would take it down before removing kumo.
  const del = await kumo(['instance', 'delete', `${env.prefix}vm`]);
  assert.equal(del.code, 0, del.stderr);
  const removed = await dpkg(['--remove', 'kumo']);
  assert.equal(removed.code, 0, removed.stderr);
  assert.ok(existsSync(db) && existsSync('/etc/kumo/kumo.conf'), 'remove keeps the state and the config');
  assert.ok(!existsSync('/usr/lib/kumo'), 'no installed kumo: preinst reads the schema from the store\'s header');
  const digest = await sha256(db);
  const r = await dpkg(['-i', debN]);
  assert.notEqual(r.code, 0, 'the install must fail');
  assert.match(r.stderr + r.stdout, new RegExp(`kumo ${versionN.replace(/[.]/g, '\\.')} refuses to install: the store ${db} is at schema ${schemaN + 1}`));
  assert.equal(await sha256(db), digest);
  assert.equal(await installedVersion(), undefined);
});

test('purge (of the removed package) removes its config, and the state it was given once no guest uses it', async () => {
  // A guest (defined, never started) whose disk is in KUMO_HOME: purge keeps the state and says why.
  const guest = `${env.prefix}-pg`;
  const disk = join(home, 'instances', guest, 'root.qcow2');
  await mkdir(dirname(disk), { recursive: true });
  await local.run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
  const xmlFile = join(home, 'guest.xml');
  await writeFile(xmlFile, `<domain type='qemu'><name>${guest}</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os>` +
    `<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk></devices></domain>`);
  await local.run('virsh', ['-q', '-c', 'qemu:///system', 'define', xmlFile]);
  try {
    const r = await dpkg(['--purge', 'kumo']);
    assert.equal(r.code, 0, r.stderr);
    installed = false;
    assert.match(r.stderr + r.stdout, new RegExp(`kumo: ${home} is kept: guests or daemons of kumo still use it`));
    assert.ok(existsSync(join(home, 'kumo.db')), 'the state under a guest stays');
  } finally {
    await local.run('virsh', ['-q', '-c', 'qemu:///system', 'undefine', guest], { allowFailure: true });
  }
  assert.equal(await installedVersion(), undefined);
  for (const p of ['/usr/bin/kumo', '/usr/lib/kumo', '/etc/kumo', '/lib/systemd/system/kumo-api.service']) assert.ok(!existsSync(p), `${p} is gone`);

  // The guest gone, N+1 installed again over its kept state and purged: now the state goes too.
  await mkdir('/etc/kumo', { recursive: true });
  await writeFile('/etc/kumo/kumo.conf', `KUMO_HOME=${home}\nKUMO_CACHE=${testCache()}\n`);
  const again = await dpkg(['-i', debNext]);
  assert.equal(again.code, 0, again.stderr);
  installed = true;
  const purged = await dpkg(['--purge', 'kumo']);
  assert.equal(purged.code, 0, purged.stderr);
  installed = false;
  for (const p of ['/usr/lib/kumo', '/etc/kumo', home]) assert.ok(!existsSync(p), `${p} is gone`);
});
