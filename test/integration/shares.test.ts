import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freeSubnet, makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { ShareService } from '../../src/service/shares.js';

/**
 * The course's storage node: one folder with index.html, served over NFS to the instances'
 * network only; every instance mounts it and serves the same page, and a change on the
 * storage side shows everywhere. An instance on another network cannot mount it: the export's
 * rule hides it from that client, while one on the share's network mounts the same export.
 */
let env: TestEnv;
let other: string;

before(async () => {
  env = await makeTestEnv('shr');
  await new ImageService(env.ctx).buildTiny();
  other = `${env.prefix}-other`;
  const made = await env.cli(['network', 'create', other, '--mode', 'isolated', '--cidr', `192.168.${await freeSubnet()}.0/24`]);
  assert.equal(made.code, 0, made.stderr);
});
after(async () => {
  for (const s of env?.ctx.shares.list() ?? []) await new ShareService(env.ctx).delete(s.name).catch(() => undefined);
  for (const i of env?.ctx.instances.list() ?? []) await new InstanceService(env.ctx).delete(i.name).catch(() => undefined);
  await env?.cleanup();
});

/** Mounts the share and serves it on 8081; the mount's outcome is published on 8080. */
const mountingUserData = (source: string, gateway: string) => `#cloud-config
runcmd:
  - mkdir -p /mnt/share
  - "mount -t nfs4 -o vers=4.1,actimeo=1,addr=${gateway} ${source} /mnt/share > /var/www/mount.txt 2>&1; echo rc=$? >> /var/www/mount.txt"
  - [busybox, httpd, -p, "8081", -h, /mnt/share]
`;

async function page(url: string): Promise<string | undefined> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) }).catch(() => undefined);
  return res?.ok ? res.text() : undefined;
}

test('instances on the allowed network mount the share and serve its index.html; a change shows everywhere', async () => {
  const made = await env.cli(['share', 'create', 'web', '--network', env.network]);
  assert.equal(made.code, 0, made.stderr);
  const share = await new ShareService(env.ctx).get('web');
  assert.match(made.stdout, new RegExp(`mount -t nfs4 -o vers=4\\.1,addr=\\S+ \\S+:/web /mnt`));
  await writeFile(join(share.path, 'index.html'), '<h1>shared v1</h1>\n');
  const mount = share.mounts[0]!;
  const gateway = mount.source.split(':')[0]!;
  const svc = new InstanceService(env.ctx);
  const names = [`${env.prefix}-a`, `${env.prefix}-b`];
  for (const name of names) {
    await svc.create({ name, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network], userData: mountingUserData(mount.source, gateway) });
  }
  const ips: string[] = [];
  for (const name of names) ips.push((await svc.waitReady(name, 180_000)).ip);
  for (const ip of ips) {
    const m = await waitFor('the mount result', () => page(`http://${ip}:8080/mount.txt`), 60_000);
    assert.match(m, /rc=0/, m);
    assert.equal(await waitFor('the shared page', () => page(`http://${ip}:8081/index.html`), 30_000), '<h1>shared v1</h1>\n');
  }
  await writeFile(join(share.path, 'index.html'), '<h1>shared v2</h1>\n');
  for (const ip of ips) {
    await waitFor('the new page on every instance', async () => ((await page(`http://${ip}:8081/index.html`)) === '<h1>shared v2</h1>\n' ? true : undefined), 30_000);
  }
  assert.match((await env.cli(['share', 'list'])).stdout, new RegExp(`web\\s+${share.path.replace(/\//g, '\\/')}\\s+${env.network}\\s+rw`));
});

test('an instance on a network the share does not name is refused by the export\'s access rule; one on the share\'s network mounts the same export', async () => {
  const otherGw = (JSON.parse((await env.cli(['network', 'show', other, '--json'])).stdout) as { gateway: string }).gateway;
  const allowed = (await new ShareService(env.ctx).get('web')).mounts[0]!.source;
  const svc = new InstanceService(env.ctx);
  // The same export (/web) mounted the same way from the server's address on each guest's network;
  // two guests, since an NFSv4.1 client may reuse its first connection to the same server.
  const refused = `${env.prefix}-c`;
  const admitted = `${env.prefix}-d`;
  await svc.create({ name: refused, image: 'tiny', flavor: 'small', password: 'x', networks: [other], userData: mountingUserData(`${otherGw}:/web`, otherGw) });
  await svc.create({ name: admitted, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network], userData: mountingUserData(allowed, allowed.split(':')[0]!) });
  const { ip } = await svc.waitReady(refused, 180_000);
  const m = await waitFor('the mount result', () => page(`http://${ip}:8080/mount.txt`), 60_000);
  assert.doesNotMatch(m, /rc=0/, `the mount should be refused: ${m}`);
  // The server answered (not a connection refused or a timeout) and its pseudo filesystem does not
  // show this client the export its CLIENT rule leaves out (ganesha answers NFS4ERR_NOENT); the
  // same path mounts from the share's network below, so it is the rule, not the path.
  assert.match(m, /failed: No such file or directory/, `the refusal should be the export's access rule: ${m}`);
  const ok = (await svc.waitReady(admitted, 180_000)).ip;
  const mounted = await waitFor('the allowed mount result', () => page(`http://${ok}:8080/mount.txt`), 60_000);
  assert.match(mounted, /rc=0/, `the same export from the share's network: ${mounted}`);
  assert.equal(await waitFor('the shared page', () => page(`http://${ok}:8081/index.html`), 30_000), '<h1>shared v2</h1>\n');
});

test('bad share input is refused; deleting the last share stops the NFS server', async () => {
  for (const [args, code, says] of [
    [['share', 'create', 'x'], 2, /at least one --network/],
    [['share', 'create', 'x', '--network', `${env.prefix}-none`], 3, /does not exist/],
    [['share', 'create', 'x', '--network', env.network, '--path', 'relative/dir'], 2, /must be absolute|does not exist/],
    [['share', 'create', 'x', '--network', env.network, '--path', '/nonexistent-kumo-dir'], 2, /does not exist/],
    [['share', 'create', 'web', '--network', env.network], 4, /already exists/],
    [['share', 'create', '../x', '--network', env.network], 2, /not valid/],
    [['share', 'delete', 'nope'], 3, /does not exist/],
  ] as const) {
    const r = await env.cli([...args]);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, says);
  }
  assert.deepEqual(env.ctx.shares.list().map((s) => s.name), ['web']);
  for (const i of env.ctx.instances.list()) await new InstanceService(env.ctx).delete(i.name);
  assert.equal((await env.cli(['share', 'delete', 'web'])).code, 0);
  assert.equal(existsSync(join(env.home, 'nfs', 'ganesha.pid')), false);
});
