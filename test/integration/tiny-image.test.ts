import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { encrypt } from 'unixcrypt';
import { buildTinyImage } from '../../src/drivers/image/tiny.js';
import { local } from '../../src/exec/exec.js';
import { sleep } from '../../src/exec/process.js';
import { freePort } from '../helpers/lab.js';

/**
 * Builds (or reuses) the tiny guest image, boots it under TCG with a NoCloud seed on a SATA
 * cdrom (as libvirt attaches it), and checks what the guest did over HTTP (hostfwd to 127.0.0.1).
 */

const cacheDir = process.env.KUMO_TEST_CACHE ?? '/var/lib/kumo/cache';
const HTTP_TIMEOUT_MS = 90_000;

async function get(url: string, timeoutMs = 10_000): Promise<{ status: number; body: string } | undefined> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: r.status, body: await r.text() };
  } catch {
    return undefined;
  }
}

async function consoleTail(file: string): Promise<string> {
  if (!existsSync(file)) return '(no console log)';
  return (await readFile(file, 'latin1')).split('\n').slice(-25).join('\n');
}

test('the tiny image boots, applies its NoCloud seed and serves HTTP', { timeout: 900_000 }, async (t) => {
  const missing = (await local.run('sh', ['-c', 'for t; do command -v "$t" >/dev/null || echo "$t"; done', 'sh',
    'qemu-system-x86_64', 'qemu-img', 'genisoimage'])).stdout.trim();
  if (missing) {
    t.skip(`not installed: ${missing.split('\n').join(', ')}`);
    return;
  }

  const image = await buildTinyImage({ cacheDir });
  assert.ok(image.key.match(/^[0-9a-f]{64}$/));
  const again = await buildTinyImage({ cacheDir });
  assert.equal(again.built, false, 'a second build with the same inputs comes from the cache');
  assert.equal(again.key, image.key);

  const dir = await mkdtemp(join(tmpdir(), 'kumo-tiny-test-'));
  let qemu: ChildProcess | undefined;
  let qemuExit: Promise<void> = Promise.resolve();
  try {
    const hostname = `tiny-${randomBytes(3).toString('hex')}`;
    const hash = encrypt('secret', '$6$kumotest');
    const note = 'first line\n  indented: "quoted" $HOME `not run` \\ backslash\n\n\ttab, \'single\' quotes\nlast line\n';
    const userData = `#cloud-config\n${stringify({
      hostname,
      chpasswd: { list: `root:${hash}\n`, expire: false },
      ssh_authorized_keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKumoTestKeyOnly kumo@test'],
      write_files: [{ path: '/var/www/note.txt', content: note, permissions: '0644', owner: 'root:root' }],
      runcmd: [
        'grep ^root: /etc/shadow > /var/www/shadow.txt',
        'df -k / > /var/www/df.txt',
        ['sh', '-c', 'printf "%s\\n" "$0" > /var/www/argv.txt', 'two words; $(not expanded)'],
      ],
      some_unknown_key: { with: ['things'] },
    })}`;
    await writeFile(join(dir, 'user-data'), userData);
    await writeFile(join(dir, 'meta-data'), stringify({ 'instance-id': `iid-${hostname}`, 'local-hostname': 'from-meta-data' }));
    await local.run('genisoimage', ['-quiet', '-output', join(dir, 'seed.iso'), '-volid', 'cidata', '-joliet', '-rock',
      join(dir, 'user-data'), join(dir, 'meta-data')]);
    const overlay = join(dir, 'overlay.qcow2');
    await local.run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', image.disk, overlay, '2G']);

    const port = await freePort();
    const consoleLog = join(dir, 'console.log');
    const started = Date.now();
    qemu = spawn('qemu-system-x86_64', [
      '-accel', 'tcg', '-m', '256', '-nographic', '-monitor', 'none', '-no-reboot',
      '-kernel', image.kernel, '-initrd', image.initrd, '-append', image.cmdline,
      '-drive', `file=${overlay},if=virtio`,
      '-device', 'ahci,id=ahci',
      '-drive', `if=none,id=cd,file=${join(dir, 'seed.iso')},media=cdrom,readonly=on`,
      '-device', 'ide-cd,bus=ahci.0,drive=cd',
      '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:8080`,
      '-device', 'virtio-net-pci,netdev=n0',
      '-serial', `file:${consoleLog}`,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let exited = false;
    qemu.stderr?.on('data', (b: Buffer) => { stderr += b.toString(); });
    const child = qemu;
    qemuExit = new Promise((resolve) => child.on('exit', () => { exited = true; resolve(); }));

    const base = `http://127.0.0.1:${port}`;
    let index: { status: number; body: string } | undefined;
    while (Date.now() - started < HTTP_TIMEOUT_MS) {
      if (exited) assert.fail(`QEMU exited before the guest answered HTTP: ${stderr.trim()}\n${await consoleTail(consoleLog)}`);
      // until the guest listens, QEMU's user network accepts the connection and then says
      // nothing: keep each try short
      index = await get(`${base}/`, 750);
      if (index?.status === 200) break;
      await sleep(250);
    }
    if (index?.status !== 200) {
      assert.fail(`no HTTP answer within ${HTTP_TIMEOUT_MS / 1000} s\n${await consoleTail(consoleLog)}`);
    }
    t.diagnostic(`boot to first HTTP answer: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    assert.match(index.body, new RegExp(`<h1>${hostname}</h1>`), 'the default page names the host');

    const page = async (path: string): Promise<string> => {
      const r = await get(`${base}/${path}`);
      assert.ok(r, `GET /${path} answered`);
      assert.equal(r.status, 200, `GET /${path}`);
      return r.body;
    };
    assert.equal((await page('shadow.txt')).trim().split(':')[1], hash, "root's /etc/shadow entry holds the requested hash");
    assert.equal(await page('note.txt'), note, 'write_files wrote the exact content');
    assert.equal(await page('argv.txt'), 'two words; $(not expanded)\n', 'a runcmd list item runs as argv');
    const row = (await page('df.txt')).trim().split('\n').find((l) => /\s\/$/.test(l)) ?? '';
    const kib = Number(row.trim().split(/\s+/)[1]);
    assert.ok(kib > 1.5 * 1024 * 1024, `the root filesystem grew to the disk (df: ${row})`);

    // the login prompt comes right after the HTTP server
    let prompt = false;
    for (let i = 0; i < 60 && !prompt; i++) {
      prompt = / login: /.test(await readFile(consoleLog, 'latin1'));
      if (!prompt) await sleep(250);
    }
    assert.ok(prompt, `a login prompt on the serial console\n${await consoleTail(consoleLog)}`);
  } finally {
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) {
      qemu.kill('SIGKILL');
      await qemuExit;
    }
    await rm(dir, { recursive: true, force: true });
  }
});
