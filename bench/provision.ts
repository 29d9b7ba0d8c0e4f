#!/usr/bin/env node
/**
 * Provisioning benchmark: the course's manual way (cp + virt-customize + virt-install) against
 * `kumo instance create`, with the raw QEMU boot of the same guest as the floor.
 *
 *   node dist/bench/provision.js [--runs N] [--only WAYS] [--timeout SECONDS] [--workdir DIR] [--json FILE]
 *
 * Everything it makes carries a per-run prefix (domains, the isolated network and its bridge,
 * libvirt storage pools virt-install makes on its own) or lives in one per-run folder, and is
 * removed in a finally block, pass or fail (also on Ctrl+C). See bench/README.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { local } from '../src/exec/exec.js';
import { Virsh } from '../src/drivers/libvirt/virsh.js';
import { LibvirtConnection } from '../src/drivers/libvirt/rpc/connection.js';
import { buildSeed, writeSeedIso } from '../src/drivers/image/seed.js';
import { hashPassword } from '../src/model/password.js';
import type { Image } from '../src/model/types.js';
import {
  BenchArgsError, benchFolder, cleanup, freePort, isolatedNetwork, KUMO_CACHE, kumo, load1, log, machineFacts, median, now, requireTools, run,
  scriptOptions, sleep, undo,
} from './common.js';

// ---------------------------------------------------------------- options

interface Options {
  runs: number;
  timeoutS: number;
  workdir: string;
  json?: string;
  /** Where to keep each guest's console log (they go with the run folder otherwise). */
  logs?: string;
  /** What the padded image's qcow2 file should weigh: the course's CentOS-7-x86_64-GenericCloud-2009.qcow2. */
  targetBytes: number;
  keepGoing: boolean;
  /** The ways measured (default all three; `--only kumo,floor` skips the slow manual way). */
  ways: Way[];
}

const COURSE_IMAGE_BYTES = 888_995_840;
const PASSWORD = 'test123';
const URI = 'qemu:///system';

function usage(): string {
  return `usage: node dist/bench/provision.js [options]
  --runs N            measurements of each way (default 3); the median is reported
  --timeout SECONDS   longest wait for a guest to answer HTTP once it was started (default 300)
  --workdir DIR       where the per-run folder is made (default /var/tmp)
  --target-bytes N    size of the padded image file (default ${COURSE_IMAGE_BYTES}, the course's CentOS 7 image)
  --json FILE         also write every raw measurement to FILE
  --logs DIR          keep each guest's console log in DIR
  --keep-going        record a failed measurement and go on instead of stopping
  --only WAYS         measure only these, comma-separated: floor, kumo, manual (default all)`;
}

const options = (): Options => scriptOptions({
  runs: { kind: 'whole', min: 1, default: 3 },
  timeout: { kind: 'whole', min: 10, default: 300 },
  workdir: { kind: 'text', default: '/var/tmp', bare: '.' },
  'target-bytes': { kind: 'whole', min: 100 * 2 ** 20, default: COURSE_IMAGE_BYTES },
  json: { kind: 'text', bare: 'bench.json' },
  logs: { kind: 'text', bare: 'bench-logs' },
  'keep-going': { kind: 'flag' },
  only: { kind: 'text' },
}, usage(), (v) => ({
  runs: v.runs, timeoutS: v.timeout, workdir: resolve(v.workdir), targetBytes: v['target-bytes'], keepGoing: v['keep-going'],
  ways: v.only === undefined ? [...WAYS] : parseWays(v.only),
  json: v.json === undefined ? undefined : resolve(v.json), logs: v.logs === undefined ? undefined : resolve(v.logs),
}));

const WAYS = ['floor', 'kumo', 'manual'] as const;

function parseWays(v: string): Way[] {
  const ways = v.split(',').filter(Boolean);
  const bad = ways.filter((w) => !(WAYS as readonly string[]).includes(w));
  if (!ways.length || bad.length) throw new BenchArgsError(`--only takes ${WAYS.join(', ')} (comma-separated), got "${v}"`, usage());
  return ways as Way[];
}

// ---------------------------------------------------------------- small helpers

const secs = (ms: number) => ms / 1000;
/** Bytes really allocated on the host's disk (st_blocks), for a file or a whole folder. */
async function allocatedBytes(path: string): Promise<number> {
  const s = await lstat(path);
  if (!s.isDirectory()) return s.blocks * 512;
  let total = s.blocks * 512;
  for (const e of await readdir(path)) total += await allocatedBytes(join(path, e));
  return total;
}

/** Polls until probe answers; gives up at `deadline` (a performance.now() time). */
async function waitFor<T>(what: string, deadline: number, intervalMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Any HTTP answer at all (busybox httpd's 404 counts: the guest is up and serving). */
async function answersHttp(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

/**
 * Time (performance.now()) of the first HTTP answer from url. A new probe starts every 250 ms
 * without waiting for the ones in flight: through QEMU's user networking a connection to a
 * guest that is not listening yet hangs instead of being refused, and waiting for each probe's
 * timeout would round the result up by that timeout. `alive` throws if the guest died.
 */
async function firstHttpAnswer(url: string, deadline: number, alive: () => Promise<void>): Promise<number> {
  let answeredAt: number | undefined;
  let inFlight = 0;
  while (answeredAt === undefined) {
    if (now() > deadline) throw new Error(`${url} did not answer in time`);
    if (inFlight < 12) {
      inFlight++;
      void answersHttp(url, 3_000).then((ok) => {
        inFlight--;
        if (ok) answeredAt ??= now();
      });
    }
    await sleep(250);
    if (answeredAt === undefined) await alive();
  }
  return answeredAt;
}

const mb = (b: number) => `${(b / 1e6).toFixed(b < 1e7 ? 2 : 0)} MB`;

// ---------------------------------------------------------------- the bench's own world

interface World {
  prefix: string;
  dir: string;
  home: string;
  network: string;
  virsh: Virsh;
  cliEnv: NodeJS.ProcessEnv;
  guestfsEnv: NodeJS.ProcessEnv;
  /** The padded image file both ways start from, and its boot files. */
  padded: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  passwordFile: string;
}

/**
 * libguestfs here needs a Debian cloud kernel with its modules (after depmod) handed to supermin,
 * TCG, and an existing /lib/modules (HOST-NOTES). The kernel is kept in the shared cache, like
 * the tiny image's own build files.
 */
async function guestfsKernel(): Promise<{ kernel: string; version: string; modules: string }> {
  const base = join(KUMO_CACHE, 'bench-supermin');
  const pkg = (await run('apt-cache', ['depends', 'linux-image-cloud-amd64'])).match(/Depends: (linux-image-(\S+))/);
  if (!pkg) throw new Error('apt-cache does not know linux-image-cloud-amd64: run apt-get update');
  const [, name, version] = pkg as unknown as [string, string, string];
  const root = join(base, version);
  const kernel = join(root, 'boot', `vmlinuz-${version}`);
  const modules = join(root, 'lib', 'modules', version);
  if (!existsSync(join(modules, 'modules.dep'))) {
    log(`fetching ${name} for libguestfs's appliance (once, into ${base})`);
    const dl = join(base, 'download');
    await rm(dl, { recursive: true, force: true });
    await mkdir(dl, { recursive: true });
    // as root, apt would warn that its _apt user cannot write into our folder
    await run('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', name], { cwd: dl });
    const deb = (await readdir(dl)).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${name} left no .deb`);
    await rm(root, { recursive: true, force: true });
    await run('dpkg-deb', ['-x', join(dl, deb), root]);
    await run('depmod', ['-b', root, version]);
    await rm(dl, { recursive: true, force: true });
  }
  return { kernel, version, modules };
}

async function guestfsWorld(dir: string): Promise<NodeJS.ProcessEnv> {
  const g = await guestfsKernel();
  if (!existsSync('/lib/modules')) {
    await mkdir('/lib/modules');
    undo.push({ what: 'remove the empty /lib/modules made for supermin', fn: () => rmdir('/lib/modules') });
  }
  const guestfsCache = join(dir, 'guestfs-cache');
  const guestfsTmp = join(dir, 'guestfs-tmp');
  await mkdir(guestfsCache);
  await mkdir(guestfsTmp);
  return {
    ...process.env, LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg',
    SUPERMIN_KERNEL: g.kernel, SUPERMIN_KERNEL_VERSION: g.version, SUPERMIN_MODULES: g.modules,
    LIBGUESTFS_CACHEDIR: guestfsCache, TMPDIR: guestfsTmp,
  };
}

async function makeWorld(o: Options): Promise<World> {
  // The bench's own watching (a domain's state every 250 ms while it waits for the lease) goes over
  // one protocol connection: a virsh process per look took CPU from the booting TCG guest.
  const conn = new LibvirtConnection(URI);
  undo.push({ what: 'close the libvirt connection', fn: () => conn.close() });
  const virsh = new Virsh(URI, local, undefined, undefined, conn);
  if (!(await virsh.ping())) throw new Error(`libvirt at ${URI} does not answer: start it (virtlogd -d; libvirtd -d)`);
  const { prefix, dir, home, cliEnv } = await benchFolder('kb', o.workdir);
  // Anything libvirt still holds that carries our prefix or points into our folder goes first.
  undo.push({ what: 'remove domains, pools', fn: () => sweepLibvirt(virsh, prefix, dir) });

  // kumo's own network XML (with dnsmasq's no-ping, as every kumo network has): both ways share it.
  const { network, third } = await isolatedNetwork(virsh, prefix);
  log(`network ${network}: isolated 192.168.${third}.0/24 on bridge ${prefix}br; folder ${dir}`);

  const passwordFile = join(dir, 'password');
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });

  // libguestfs (the manual way only): its appliance cache and temporary files live in our folder and go with it.
  const guestfsEnv = o.ways.includes('manual') ? await guestfsWorld(dir) : process.env;

  log('kumo image build tiny');
  await kumo(cliEnv, ['image', 'build', 'tiny'], 1_800_000);
  const tiny = JSON.parse(await kumo(cliEnv, ['image', 'show', 'tiny', '--json'])) as Image;
  if (!tiny.kernel || !tiny.cmdline) throw new Error('the tiny image has no direct-boot kernel/cmdline');

  const padDir = join(dir, 'padded');
  await mkdir(padDir, { mode: 0o755 });
  const kernel = join(padDir, 'vmlinuz');
  const initrd = join(padDir, 'initrd.img');
  await copyFile(tiny.kernel, kernel);
  if (tiny.initrd) await copyFile(tiny.initrd, initrd);
  const padded = await buildPadded(tiny, padDir, o.targetBytes);

  log('kumo image import padded');
  await kumo(cliEnv, ['image', 'import', 'padded', padded, '--kernel', kernel, ...(tiny.initrd ? ['--initrd', initrd] : []),
    '--cmdline', tiny.cmdline, '--os', 'tiny padded']);

  return {
    prefix, dir, home, network, virsh, cliEnv, guestfsEnv, padded, kernel,
    initrd: tiny.initrd ? initrd : '', cmdline: tiny.cmdline, passwordFile,
  };
}

/** Removes every domain named with our prefix and every storage pool that points into our folder. */
async function sweepLibvirt(virsh: Virsh, prefix: string, dir: string): Promise<void> {
  for (const d of await virsh.listDomains()) {
    if (d.name.startsWith(`${prefix}-`)) await virsh.removeDomain(d.name);
  }
  const pools = (await virsh.run(['pool-list', '--all', '--name'])).split('\n').map((l) => l.trim()).filter(Boolean);
  for (const p of pools) {
    const xml = await virsh.run(['pool-dumpxml', p]).catch(() => '');
    const path = /<target>\s*<path>([^<]+)<\/path>/.exec(xml)?.[1];
    if (!p.startsWith(prefix) && !(path && (path === dir || path.startsWith(`${dir}/`)))) continue;
    await virsh.run(['pool-destroy', p]).catch(() => undefined);
    await virsh.run(['pool-undefine', p]).catch(() => undefined);
  }
}

/**
 * The tiny image padded to the course image's size: raw copy, grown, filesystem grown with
 * resize2fs, a file of random (incompressible) bytes written into it with debugfs (no mount),
 * and back to an uncompressed qcow2.
 */
async function buildPadded(tiny: Image, padDir: string, targetBytes: number): Promise<string> {
  const raw = join(padDir, 'work.raw');
  const out = join(padDir, 'padded.qcow2');
  log('padding the image: qemu-img convert -O raw');
  await run('qemu-img', ['convert', '-O', 'raw', tiny.disk, raw]);
  const tinyData = await allocatedBytes(raw);
  const padBytes = Math.max(0, targetBytes - tinyData - 4 * 2 ** 20);
  // Room for the data plus a fifth free, rounded up to 64 MiB.
  const size = Math.ceil((tiny.virtualSizeBytes + padBytes * 1.2) / 2 ** 26) * 2 ** 26;
  await run('qemu-img', ['resize', '-q', '-f', 'raw', raw, String(size)]);
  await run('e2fsck', ['-f', '-y', raw], { allowFailure: true }); // resize2fs insists on a fresh check
  await run('resize2fs', [raw]);
  const pad = join(padDir, 'pad.bin');
  log(`writing ${mb(padBytes)} of random data into /pad.bin (debugfs -w)`);
  await writeRandom(pad, padBytes);
  await run('debugfs', ['-w', '-R', `write ${pad} /pad.bin`, raw]);
  await rm(pad);
  const fsck = await local.run('e2fsck', ['-f', '-n', raw], { allowFailure: true, timeoutMs: 600_000 });
  if (fsck.code !== 0) throw new Error(`the padded filesystem does not check clean: ${fsck.stdout.slice(-500)}`);
  await run('qemu-img', ['convert', '-O', 'qcow2', raw, out]);
  await rm(raw);
  const info = JSON.parse(await run('qemu-img', ['info', '--output=json', out])) as { 'actual-size': number; 'virtual-size': number };
  const fileBytes = (await stat(out)).size;
  log(`padded image ${out}: file ${mb(fileBytes)}, allocated ${mb(info['actual-size'])}, virtual ${mb(info['virtual-size'])}`);
  if (info['actual-size'] < targetBytes * 0.9) throw new Error(`the padded image holds only ${mb(info['actual-size'])}, expected ~${mb(targetBytes)}`);
  return out;
}

async function writeRandom(file: string, bytes: number): Promise<void> {
  const ws = createWriteStream(file);
  const chunk = 4 * 2 ** 20;
  for (let done = 0; done < bytes; done += chunk) {
    if (!ws.write(randomBytes(Math.min(chunk, bytes - done)))) await once(ws, 'drain');
  }
  ws.end();
  await once(ws, 'finish');
}

// ---------------------------------------------------------------- measurements

type Way = (typeof WAYS)[number];

interface Measurement {
  way: Way;
  run: number;
  ok: boolean;
  error?: string;
  /** From the first command until libvirt reports the domain running (not for the floor). */
  runningS?: number;
  /** From the first command until the guest answers HTTP on 8080. */
  httpS?: number;
  /** Bytes the instance added on the host's disk, measured once the guest answered. */
  diskBytes?: number;
  steps: Record<string, number>;
  ip?: string;
  /** Whether root's password was really set (manual: /etc/shadow read back; kumo/floor: the guest says so). */
  passwordSet?: boolean;
  /** The host's 1-minute load average when the measurement began. */
  load: number;
}

async function macOf(virsh: Virsh, domain: string): Promise<string> {
  const out = await virsh.run(['domiflist', domain]);
  const mac = /(\S\S:\S\S:\S\S:\S\S:\S\S:\S\S)/.exec(out)?.[1];
  if (!mac) throw new Error(`domain ${domain} has no NIC: ${out}`);
  return mac.toLowerCase();
}

/**
 * Waits for the guest's DHCP lease on our network, then for its first HTTP answer; gives up
 * timeoutMs after its domain started. Times are measured from t0.
 */
async function waitGuest(w: World, domain: string, t0: number, timeoutMs: number, m: Measurement): Promise<void> {
  const mac = await macOf(w.virsh, domain);
  const deadline = now() + timeoutMs;
  const ip = await waitFor(`a DHCP lease for ${domain} (${mac}) within ${timeoutMs / 1000} s`, deadline, 250, async () => {
    const state = await w.virsh.domainState(domain);
    if (state !== 'running') throw new Error(`domain ${domain} is ${state} while waiting for its lease`);
    return (await w.virsh.dhcpLeases(w.network)).find((l) => l.mac === mac)?.ipv4;
  });
  m.steps.lease = secs(now() - t0);
  m.ip = ip;
  const answered = await firstHttpAnswer(`http://${ip}:8080/`, deadline, async () => {
    const state = await w.virsh.domainState(domain);
    if (state !== 'running') throw new Error(`domain ${domain} is ${state} while waiting for HTTP`);
  });
  m.httpS = secs(answered - t0);
}

async function assertRunning(w: World, domain: string): Promise<void> {
  const state = await w.virsh.domainState(domain);
  if (state !== 'running') throw new Error(`domain ${domain} is ${state} right after it was started`);
}

/** (a) The course: cp the image, virt-customize --root-password, virt-install --import. */
async function measureManual(w: World, i: number, o: Options): Promise<Measurement> {
  const m: Measurement = { way: 'manual', run: i, ok: false, steps: {}, load: load1() };
  const name = `${w.prefix}-m${i}`;
  // Its own folder: virt-install makes a storage pool for the folder of a disk it is given,
  // and names it after the folder, so the folder carries our prefix.
  const vmDir = join(w.dir, `${w.prefix}-manual${i}`);
  await mkdir(vmDir, { mode: 0o755 });
  const disk = join(vmDir, `${name}.qcow2`);
  const kernel = join(vmDir, 'vmlinuz');
  const initrd = join(vmDir, 'initrd.img');
  await copyFile(w.kernel, kernel); // libvirt chowns boot files: each domain gets its own
  if (w.initrd) await copyFile(w.initrd, initrd);
  try {
    const t0 = now();
    await run('cp', [w.padded, disk], { timeoutMs: 600_000 });
    m.steps.cp = secs(now() - t0);
    await run('virt-customize', ['-a', disk, '--root-password', `password:${PASSWORD}`],
      { env: w.guestfsEnv, timeoutMs: 900_000 });
    m.steps.customize = secs(now() - t0);
    const bootArgs = [`kernel=${kernel}`, ...(w.initrd ? [`initrd=${initrd}`] : []),
      `kernel_args="${w.cmdline.replace(/"/g, '')}"`].join(',');
    await run('virt-install', [
      '--connect', URI, '--import', '--name', name, '--vcpus', '1', '--memory', '1024',
      '--disk', `path=${disk}`, '--graphics', 'vnc,listen=127.0.0.1', '--network', `network=${w.network}`,
      '--osinfo', 'linux2022', '--virt-type', 'qemu', '--noautoconsole',
      '--boot', bootArgs,
      '--serial', `pty,log.file=${join(vmDir, 'console.log')},log.append=on`,
    ], { timeoutMs: 300_000 });
    await assertRunning(w, name);
    m.runningS = secs(now() - t0);
    m.steps.install = m.runningS;
    await waitGuest(w, name, t0, o.timeoutS * 1000, m);
    m.diskBytes = await allocatedBytes(disk);
    m.ok = true;
  } catch (e) {
    m.error = (e as Error).message;
    await tailConsole(join(vmDir, 'console.log'));
  } finally {
    await collectConsole(join(vmDir, 'console.log'), m, o);
    await w.virsh.removeDomain(name).catch((e: Error) => log(`remove ${name}: ${e.message}`));
    if (m.ok) {
      // QEMU may still hold the disk's lock for a moment after `virsh destroy`: retry.
      for (let t = 0; t < 20 && m.passwordSet === undefined; t++) {
        m.passwordSet = await shadowHasRootHash(disk, vmDir).catch((e: Error) => {
          if (t === 19) log(`reading /etc/shadow back from ${disk}: ${e.message.split('\n').slice(-1)[0]}`);
          return undefined;
        });
        if (m.passwordSet === undefined) await sleep(500);
      }
      m.passwordSet ??= false;
    }
    await sweepLibvirt(w.virsh, `${w.prefix}-manual${i}`, vmDir).catch(() => undefined);
    await rm(vmDir, { recursive: true, force: true });
  }
  return m;
}

/** (b) kumo instance create, run as a user runs it. */
async function measureKumo(w: World, i: number, o: Options): Promise<Measurement> {
  const m: Measurement = { way: 'kumo', run: i, ok: false, steps: {}, load: load1() };
  const name = `${w.prefix}-k${i}`;
  const instDir = join(w.home, 'instances', name);
  try {
    const t0 = now();
    await kumo(w.cliEnv, ['instance', 'create', name, '--image', 'padded', '--flavor', 'small',
      '--password-file', w.passwordFile, '--network', w.network], 300_000);
    m.steps.cli = secs(now() - t0);
    await assertRunning(w, name);
    m.runningS = secs(now() - t0);
    await waitGuest(w, name, t0, o.timeoutS * 1000, m);
    m.diskBytes = await allocatedBytes(instDir);
    m.ok = true;
  } catch (e) {
    m.error = (e as Error).message;
    await tailConsole(join(instDir, 'console.log'));
  } finally {
    await collectConsole(join(instDir, 'console.log'), m, o);
    await kumo(w.cliEnv, ['instance', 'delete', name], 120_000).catch(() => undefined);
    await w.virsh.removeDomain(name).catch(() => undefined);
    await rm(instDir, { recursive: true, force: true });
  }
  return m;
}

/** (c) The floor: QEMU alone, TCG, the same kernel/initrd/cmdline, an overlay and a seed made beforehand. */
async function measureFloor(w: World, i: number, o: Options): Promise<Measurement> {
  const m: Measurement = { way: 'floor', run: i, ok: false, steps: {}, load: load1() };
  const fdir = join(w.dir, `floor${i}`);
  await mkdir(fdir, { mode: 0o755 });
  let qemu: ChildProcess | undefined;
  const stopQemu = async () => {
    if (!qemu || qemu.exitCode !== null || qemu.signalCode !== null) return;
    const exited = once(qemu, 'exit');
    qemu.kill('SIGTERM');
    const t = setTimeout(() => qemu?.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
  };
  undo.push({ what: `stop floor QEMU ${i}`, fn: stopQemu });
  try {
    // Same disk size as kumo's flavor small, so the guest does the same first-boot work.
    const overlay = join(fdir, 'root.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', w.padded, overlay, String(10 * 2 ** 30)]);
    const mac = `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
    const seedIso = join(fdir, 'seed.iso');
    await writeSeedIso(buildSeed({
      instanceId: `${w.prefix}-floor${i}`, hostname: `${w.prefix}-f${i}`, sshKeys: [], nics: [{ mac }],
      rootPasswordHash: hashPassword(PASSWORD),
    }), seedIso, fdir);
    const port = await freePort();
    const consoleLog = join(fdir, 'console.log');
    const args = [
      '-name', `${w.prefix}-f${i}`, '-machine', 'q35', '-accel', 'tcg', '-m', '1024', '-smp', '1',
      '-kernel', w.kernel, ...(w.initrd ? ['-initrd', w.initrd] : []), '-append', w.cmdline,
      '-drive', `file=${overlay},format=qcow2,if=virtio,discard=unmap`,
      '-drive', `file=${seedIso},format=raw,media=cdrom,readonly=on`,
      '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:8080`,
      '-device', `virtio-net-pci,netdev=n0,mac=${mac}`,
      '-display', 'none', '-serial', `file:${consoleLog}`, '-monitor', 'none', '-no-reboot',
    ];
    const t0 = now();
    qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    qemu.stderr?.on('data', (b: Buffer) => { stderr += b.toString(); });
    const url = `http://127.0.0.1:${port}/`;
    const answered = await firstHttpAnswer(url, t0 + o.timeoutS * 1000, async () => {
      if (qemu!.exitCode !== null) throw new Error(`QEMU exited with ${qemu!.exitCode}: ${stderr.trim().slice(-500)}`);
    });
    m.httpS = secs(answered - t0);
    m.diskBytes = (await allocatedBytes(overlay)) + (await allocatedBytes(seedIso));
    m.ok = true;
  } catch (e) {
    m.error = (e as Error).message;
    await tailConsole(join(fdir, 'console.log'));
  } finally {
    await collectConsole(join(fdir, 'console.log'), m, o);
    await stopQemu();
    await rm(fdir, { recursive: true, force: true });
  }
  return m;
}

/**
 * Reads /etc/shadow back from the manual copy (after its domain is gone, outside the timing):
 * did virt-customize really give root a password hash?
 */
async function shadowHasRootHash(disk: string, scratchDir: string): Promise<boolean> {
  const raw = join(scratchDir, 'check.raw');
  try {
    await run('qemu-img', ['convert', '-O', 'raw', disk, raw]);
    // `virsh destroy` pulled the plug: replay the guest's ext4 journal before reading files,
    // or debugfs may see half-written metadata.
    const fsck = await local.run('e2fsck', ['-E', 'journal_only', '-y', raw], { allowFailure: true, timeoutMs: 300_000 });
    if (fsck.code > 1) throw new Error(`e2fsck -E journal_only exited ${fsck.code}: ${fsck.stdout.trim().slice(-300)}`);
    const shadow = await run('debugfs', ['-R', 'cat /etc/shadow', raw]);
    const root = shadow.split('\n').find((l) => l.startsWith('root:'));
    return /^root:\$[0-9a-z]+\$/.test(root ?? '');
  } finally {
    await rm(raw, { force: true });
  }
}

/** On failure, the last lines the guest printed (the log stays in the bench folder until cleanup). */
async function tailConsole(file: string, lines = 25): Promise<void> {
  if (!lines) return;
  const text = await readFile(file, 'utf8').catch(() => '');
  if (text) log(`last console lines of ${file}:\n${text.split('\n').slice(-lines).join('\n')}`);
}

/**
 * Reads what the guest said about its own boot ("tiny: boot finished in N s", its uptime when
 * httpd had started) into m.steps.guestBoot, and keeps the log when --logs asks for it.
 */
async function collectConsole(file: string, m: Measurement, o: Options): Promise<void> {
  let text = '';
  // The guest prints its last boot line a moment after httpd answers: give it up to 5 s.
  for (let t = 0; t < 10; t++) {
    text = await readFile(file, 'utf8').catch(() => '');
    if (!m.ok || /tiny: boot finished/.test(text)) break;
    await sleep(500);
  }
  const up = /tiny: boot finished in ([\d.]+) s/.exec(text)?.[1];
  if (up) m.steps.guestBoot = Number(up);
  if (m.way !== 'manual') m.passwordSet = /password set for root/.test(text);
  if (o.logs && text) {
    await mkdir(o.logs, { recursive: true });
    await writeFile(join(o.logs, `${m.way}-${m.run}.log`), text);
  }
}

// ---------------------------------------------------------------- report

function report(ms: Measurement[], o: Options, facts: Record<string, string>): string {
  const ok = (way: Way) => ms.filter((m) => m.way === way && m.ok);
  const med = (way: Way, key: 'runningS' | 'httpS' | 'diskBytes') => {
    const xs = ok(way).map((m) => m[key]).filter((v): v is number => v !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  const medStep = (way: Way, key: string) => {
    const xs = ok(way).map((m) => m.steps[key]).filter((v): v is number => v !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  const s = (v: number | undefined) => (v === undefined ? 'n/a' : `${v.toFixed(1)} s`);
  const b = (v: number | undefined) => (v === undefined ? 'n/a' : mb(v));
  const r = (a: number | undefined, c: number | undefined) => (a === undefined || c === undefined || c === 0 ? 'n/a' : `${(a / c).toFixed(1)}×`);
  const pw = (way: Way) => `${ok(way).filter((m) => m.passwordSet).length}/${ok(way).length}`;
  const n = (way: Way) => `${ok(way).length}/${ms.filter((m) => m.way === way).length}`;
  const lines = [
    `Medians of ${o.runs} run(s); ${Object.entries(facts).map(([k, v]) => `${k}: ${v}`).join('; ')}`,
    '',
    '| | manual (cp + virt-customize + virt-install) | kumo instance create | QEMU floor |',
    '|---|---|---|---|',
    `| successful runs | ${n('manual')} | ${n('kumo')} | ${n('floor')} |`,
    `| until the domain runs | ${s(med('manual', 'runningS'))} | ${s(med('kumo', 'runningS'))} | — |`,
    `| until HTTP answers on 8080 | ${s(med('manual', 'httpS'))} | ${s(med('kumo', 'httpS'))} | ${s(med('floor', 'httpS'))} |`,
    `| the guest's own uptime at boot finished | ${s(medStep('manual', 'guestBoot'))} | ${s(medStep('kumo', 'guestBoot'))} | ${s(medStep('floor', 'guestBoot'))} |`,
    `| root password set (checked) | ${pw('manual')} | ${pw('kumo')} | ${pw('floor')} |`,
    `| disk added per instance | ${b(med('manual', 'diskBytes'))} | ${b(med('kumo', 'diskBytes'))} | ${b(med('floor', 'diskBytes'))} (overlay + seed) |`,
    '',
    `manual steps (cumulative medians): cp ${s(medStep('manual', 'cp'))}, + virt-customize ${s(medStep('manual', 'customize'))}, + virt-install ${s(medStep('manual', 'install'))}, DHCP lease ${s(medStep('manual', 'lease'))}`,
    `kumo steps (cumulative medians): CLI returned ${s(medStep('kumo', 'cli'))}, DHCP lease ${s(medStep('kumo', 'lease'))}`,
    '',
    '| ratio | value |',
    '|---|---|',
    `| manual / kumo, until the domain runs | ${r(med('manual', 'runningS'), med('kumo', 'runningS'))} |`,
    `| manual / kumo, until HTTP answers | ${r(med('manual', 'httpS'), med('kumo', 'httpS'))} |`,
    `| manual / kumo, disk per instance | ${r(med('manual', 'diskBytes'), med('kumo', 'diskBytes'))} |`,
    `| kumo / floor, until HTTP answers | ${r(med('kumo', 'httpS'), med('floor', 'httpS'))} |`,
    `| manual / floor, until HTTP answers | ${r(med('manual', 'httpS'), med('floor', 'httpS'))} |`,
    '',
    'every run:',
    ...ms.map((m) => `  ${m.way.padEnd(6)} #${m.run} (load ${m.load.toFixed(2)}): ${m.ok
      ? `running ${s(m.runningS)}, HTTP ${s(m.httpS)}, disk ${b(m.diskBytes)}, steps ${Object.entries(m.steps).map(([k, v]) => `${k}=${v.toFixed(2)}`).join(' ')}`
      : `FAILED: ${m.error}`}`),
  ];
  return lines.join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const o = options();
  const measurements: Measurement[] = [];
  const started = new Date().toISOString();
  try {
    const manual = o.ways.includes('manual');
    await requireTools(['virsh', ...(manual ? ['virt-install', 'virt-customize'] : []), 'qemu-system-x86_64', 'qemu-img', 'debugfs', 'resize2fs', 'e2fsck', 'cp']);
    const w = await makeWorld(o);
    const facts: Record<string, string> = {
      ...machineFacts(), accel: 'TCG (libvirt domain type qemu; no KVM)',
      'padded image': `${mb((await stat(w.padded)).size)} file`,
    };

    // Warm-ups, not measured: libguestfs builds its appliance on first use (cached, like on
    // the course's machine after its first virt-customize), kumo probes acceleration once per host.
    if (manual) {
      log('warm-up: virt-customize on a throwaway overlay (builds the libguestfs appliance)');
      const warm = join(w.dir, 'warm.qcow2');
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', w.padded, warm]);
      await run('virt-customize', ['-a', warm, '--root-password', `password:${PASSWORD}`], { env: w.guestfsEnv, timeoutMs: 900_000 });
      await rm(warm);
    }
    log('warm-up: kumo host info (acceleration probe, cached per host)');
    await kumo(w.cliEnv, ['host', 'info']);

    for (let i = 1; i <= o.runs; i++) {
      for (const [way, fn] of ([['floor', measureFloor], ['kumo', measureKumo], ['manual', measureManual]] as const).filter(([x]) => o.ways.includes(x))) {
        log(`run ${i}/${o.runs}: ${way}`);
        const m = await fn(w, i, o);
        measurements.push(m);
        log(m.ok ? `  ${way}: running ${m.runningS?.toFixed(2) ?? '—'} s, HTTP ${m.httpS?.toFixed(2)} s, disk ${mb(m.diskBytes ?? 0)}`
          : `  ${way} FAILED: ${m.error}`);
        if (!m.ok && !o.keepGoing) throw new Error(`${way} run ${i} failed: ${m.error}`);
      }
    }
    const text = report(measurements, o, facts);
    console.log(text);
    if (o.json) await writeFile(o.json, JSON.stringify({ started, options: o, facts, measurements }, null, 2));
    return measurements.every((m) => m.ok) ? 0 : 1;
  } catch (e) {
    log(`error: ${(e as Error).message}`);
    if (measurements.length) console.log(report(measurements, o, {}));
    return 1;
  } finally {
    log('cleaning up');
    await cleanup();
  }
}

process.exitCode = await main();
