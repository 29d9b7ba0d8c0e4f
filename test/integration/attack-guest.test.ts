import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, copyFile, lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { local } from '../../src/exec/exec.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { ShareService } from '../../src/service/shares.js';
import { admitToDhcp } from '../../src/service/leases.js';
import { shareKind } from '../../src/service/datacenter/kinds/share.js';
import { DhcpServer } from '../../src/drivers/daemons/dnsmasq.js';
import { KumoError } from '../../src/model/errors.js';
import type { Datacenter } from '../../src/model/datacenter.js';

/**
 * Attacks from inside a guest (issue "Trust": guests stay guests). One tiny guest mounts a
 * share as root and tries to leave a setuid-root program and a link for kumo to follow; it
 * claims an address that is not its own; a client on a DHCP segment asks with a MAC kumo never
 * gave out. Each test fails on a kumo without the matching defence.
 */
let env: TestEnv;
let guestIp = '';
let gateway = '';
let victimIp = '';
let bridge = '';
const dhcpNs: string[] = [];
let dhcp: DhcpServer | undefined;
const linkTarget = () => `/tmp/kumo-attack-${env.prefix}-target`;

const ip = (...args: string[]) => local.run('ip', args);
const curl = async (url: string) =>
  (await local.run('curl', ['-sf', '--max-time', '3', '--interface', bridge, url], { allowFailure: true })).stdout || undefined;

/** As guest root: a setuid-root busybox and a link to a host path in the share, then an address that is not its own. */
const attackerUserData = (source: string, server: string, target: string, victim: string) => `#cloud-config
runcmd:
  - mkdir -p /mnt/share
  - "mount -t nfs4 -o vers=4.1,actimeo=1,addr=${server} ${source} /mnt/share > /var/www/attack.txt 2>&1; echo rc=$? >> /var/www/attack.txt"
  - "cp /bin/busybox /mnt/share/suid; chown 0:0 /mnt/share/suid; chmod 4755 /mnt/share/suid; ls -ln /mnt/share >> /var/www/attack.txt 2>&1"
  - "ln -s ${target} /mnt/share/planted.html; echo planted=$? >> /var/www/attack.txt"
  - "for d in /sys/class/net/*; do [ -e $d/device ] && ip addr add ${victim}/24 dev \${d##*/}; done; echo done >> /var/www/attack.txt"
`;

before(async () => {
  env = await makeTestEnv('atg');
  await new ImageService(env.ctx).buildTiny();
  const net = JSON.parse((await env.cli(['network', 'show', env.network, '--json'])).stdout) as { bridge: string; gateway: string };
  bridge = net.bridge;
  gateway = net.gateway;
  victimIp = gateway.replace(/\.1$/, '.250'); // outside the DHCP range: an address no one was given
  const share = await new ShareService(env.ctx).create('drop', { networks: [env.network] });
  const svc = new InstanceService(env.ctx);
  const made = await svc.create({ name: `${env.prefix}-evil`, image: 'tiny', flavor: 'small', password: 'x', networks: [env.network],
    userData: attackerUserData(share.mounts[0]!.source, gateway, linkTarget(), victimIp) });
  const mac = made.nics[0]!.mac.toLowerCase();
  guestIp = await waitFor('the guest\'s lease', async () => (await env.ctx.virshOf(made.name).dhcpLeases(env.network)).find((l) => l.mac === mac)?.ipv4, 120_000);
  const report = await waitFor('the guest\'s attack to finish', async () => {
    const t = await curl(`http://${guestIp}:8080/attack.txt`);
    return t?.includes('done') ? t : undefined;
  }, 180_000);
  assert.match(report, /rc=0/, `the guest mounts the share (the attack needs it): ${report}`);
});

after(async () => {
  await dhcp?.stop().catch(() => undefined);
  for (const ns of dhcpNs) await local.run('ip', ['netns', 'del', ns], { allowFailure: true });
  for (const i of env?.ctx.instances.list() ?? []) await new InstanceService(env.ctx).delete(i.name).catch(() => undefined);
  for (const s of env?.ctx.shares.list() ?? []) await new ShareService(env.ctx).delete(s.name).catch(() => undefined);
  if (env) await rm(linkTarget(), { force: true });
  await env?.cleanup();
});

test('a guest\'s root is squashed to nobody on its share: its "setuid-root" file is nobody\'s, and the shares folder runs no setuid program', async () => {
  const share = (await new ShareService(env.ctx).get('drop')).path;
  const st = await lstat(join(share, 'suid'));
  assert.equal(st.uid, 65534, `the guest's file belongs to uid ${st.uid} on the host (0 would be a setuid-root program)`);
  assert.equal(st.gid, 65534);
  const options = (await local.run('findmnt', ['-n', '-o', 'OPTIONS', '--mountpoint', join(env.home, 'shares')], { allowFailure: true })).stdout;
  assert.match(options, /(^|,)nosuid(,|$)/, `KUMO_HOME/shares is mounted nosuid: "${options.trim()}"`);
  // Even a root-owned setuid program (put there by anyone) does not raise a local user.
  await copyFile('/usr/bin/id', join(share, 'id-suid'));
  await chmod(join(share, 'id-suid'), 0o4755);
  await chmod(env.home, 0o711); // the local user must reach the file for the proof (the test's own folder)
  const r = await local.run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', join(share, 'id-suid')], { allowFailure: true });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /euid=0/, `a setuid-root file in the share ran as root: ${r.stdout}`);
});

test('kumo does not follow a link a guest planted in a share: plan names it, apply refuses and writes nothing', async () => {
  const share = (await new ShareService(env.ctx).get('drop')).path;
  assert.ok((await lstat(join(share, 'planted.html'))).isSymbolicLink(), 'the guest planted its link');
  const dc = { shares: { drop: { networks: [env.network], read_only: false, files: { 'planted.html': '<h1>kumo</h1>\n', 'fresh.html': 'new\n' } } } } as unknown as Datacenter;
  const changes = await shareKind.diff({ ctx: env.ctx, dc, changes: [], refuse: () => undefined });
  assert.match(changes.map((c) => c.why).join('\n'), /planted\.html not a plain file/);
  await assert.rejects(shareKind.apply(changes[0]!, { ctx: env.ctx, dc, started: [] }),
    (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && /planted\.html is a symbolic link/.test(e.message) && /rm -- /.test(e.fix ?? ''));
  assert.equal(existsSync(linkTarget()), false, 'kumo wrote through the guest\'s link onto the host');
  assert.equal(existsSync(join(share, 'fresh.html')), false, 'nothing is half-written: the refusal comes before any file');
});

test('a guest cannot use an address that is not its own: no answer from it, while its own address answers', async () => {
  assert.ok(await waitFor('the guest on its own address', () => curl(`http://${guestIp}:8080/`), 30_000), 'positive control');
  await ip('neigh', 'flush', 'dev', bridge);
  assert.equal(await curl(`http://${victimIp}:8080/`), undefined,
    `the guest answered ARP for ${victimIp} and sent from it (it should only send from ${guestIp})`);
  const bindings = (await local.run('virsh', ['-c', 'qemu:///system', 'nwfilter-binding-list'])).stdout;
  assert.match(bindings, /clean-traffic/, 'its NIC is bound to libvirt\'s clean-traffic filter');
});

test('kumo\'s DHCP (dnsmasq as nobody) answers only the MACs of kumo\'s instances', async () => {
  const sw = `${env.prefix}-dsw`;
  const cl = `${env.prefix}-dcl`;
  dhcpNs.push(sw, cl);
  await ip('netns', 'add', sw);
  await ip('netns', 'add', cl);
  await ip('-n', sw, 'link', 'add', 'seg', 'type', 'bridge');
  await ip('-n', sw, 'addr', 'add', '10.77.0.1/24', 'dev', 'seg');
  await ip('-n', sw, 'link', 'set', 'seg', 'up');
  await ip('-n', sw, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'c0', 'netns', cl);
  await ip('-n', sw, 'link', 'set', 'p0', 'master', 'seg', 'up');
  const stranger = '02:00:00:77:00:01';
  await ip('-n', cl, 'link', 'set', 'c0', 'address', stranger, 'up');
  dhcp = new DhcpServer({ link: 'seg', rangeStart: '10.77.0.100', rangeEnd: '10.77.0.150', dir: env.home, name: 'seg', knownOnly: true },
    new NetnsExecutor(sw));
  await dhcp.ensure();
  const user = (await local.run('ps', ['-o', 'user=', '-p', String(await dhcp.pid())])).stdout.trim();
  assert.equal(user, 'nobody', 'dnsmasq drops root');
  const ask = async () => (await local.run('ip', ['netns', 'exec', cl, 'busybox', 'udhcpc', '-n', '-q', '-t', '3', '-T', '1', '-i', 'c0', '-s', '/bin/true'], { allowFailure: true }));
  const refused = await ask();
  assert.notEqual(refused.code, 0, `a MAC kumo never gave out got a lease:\n${refused.stdout}${refused.stderr}`);
  assert.equal((await dhcp.leases()).length, 0);
  // The same client once kumo lists its MAC (what instance create does for its NICs).
  env.ctx.networkSubnets.upsert({ network: `${env.prefix}-seg`, cidr: '10.77.0.0/24', leaseFile: dhcp.leaseFile });
  await admitToDhcp(env.ctx, [{ mac: stranger, network: `${env.prefix}-seg` }]);
  const admitted = await waitFor('a lease for the listed MAC', async () => ((await ask()).code === 0 ? true : undefined), 20_000);
  assert.ok(admitted);
  assert.deepEqual((await dhcp.leases()).map((l) => l.mac), [stranger]);
  env.ctx.networkSubnets.delete(`${env.prefix}-seg`);
});
