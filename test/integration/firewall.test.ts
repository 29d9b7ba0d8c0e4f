import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { type Executor, type RunOptions, local } from '../../src/exec/exec.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { KumoError } from '../../src/model/errors.js';
import { type NftTable, Nftables } from '../../src/drivers/net/nftables.js';
import { type EdgeSpec, EdgeRouter, edgeForwardRules } from '../../src/drivers/net/router.js';

/**
 * The course datacenter in network namespaces, with real packets:
 *
 *   out (client 10.5.1.100) ── edge (eo 10.5.1.1 | ei 10.5.2.1) ── lb (lf 10.5.2.10)
 *   kvm: bridge brb (backend 10.5.3.0/24): lb0 .10 of lb, eth0 of i1 (.21) and i2 (.22)
 *        bridge brs (storage 10.5.4.0/24): ls .10 of lb, eth1 of i1 (.21) and i2 (.22), stg (.2)
 *
 * The instance namespaces stand for guests: their ports on the kvm node's bridges are named vi*
 * like taps, and the hypervisor filters them with a bridge-family table. Instances own
 * 10.5.4.16/28 of the storage network; the LB has a storage address outside it, so the LB can
 * reach the storage node at the IP level and only the rules stop it. The LB also routes (ip_forward)
 * and the outside client has a route to the inside, so again the rules, not routing, decide.
 */
let env: TestEnv;
const servers: ChildProcess[] = [];
const NODES = ['out', 'edge', 'lb', 'kvm', 'i1', 'i2', 'stg'] as const;
type Node = (typeof NODES)[number];
const nsName = (n: Node) => `${env.prefix}-${n}`;
const at = (n: Node) => new NetnsExecutor(nsName(n));
const nft = (n: Node) => new Nftables(at(n));

const EDGE: EdgeSpec = {
  outside: 'eo', publicAddress: '10.5.1.1',
  internal: ['10.5.2.0/24', '10.5.3.0/24', '10.5.4.0/24'],
  forwards: [{ proto: 'tcp', port: 80, to: '10.5.2.10' }],
};
const FOREIGN = 'table inet other {\n\tchain c {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t\tcounter comment "not kumo"\n\t}\n}\n';

const inputChain = (rules: NftTable['chains'][number]['rules']): NftTable['chains'][number] => ({
  name: 'input', base: { type: 'filter', hook: 'input', priority: 'filter', policy: 'drop' },
  rules: [
    { id: 'in-lo', iif: 'lo', action: 'accept' },
    { id: 'in-established', ct: ['established', 'related'], action: 'accept' },
    ...rules,
    { id: 'in-drop', action: 'drop' },
  ],
});

const edgeFilter: NftTable = {
  family: 'inet', name: 'kumo',
  chains: [
    inputChain([{ id: 'in-ssh-outside', iif: 'eo', proto: 'tcp', dport: 22, action: 'accept' }]),
    {
      name: 'forward', base: { type: 'filter', hook: 'forward', priority: 'filter', policy: 'drop' },
      rules: [...edgeForwardRules(EDGE), { id: 'fwd-drop', log: 'kumo edge fwd drop: ', action: 'drop' }],
    },
  ],
};
const lbFilter: NftTable = {
  family: 'inet', name: 'kumo',
  chains: [inputChain([{ id: 'in-http-frontend', iif: 'lf', proto: 'tcp', dport: 80, action: 'accept' }])],
};
const stgFilter: NftTable = {
  family: 'inet', name: 'kumo',
  sets: [{ name: 'instances', type: 'ipv4_addr', elements: ['10.5.4.16/28'] }],
  chains: [inputChain([{ id: 'in-nfs-instances', saddr: { set: 'instances' }, proto: 'tcp', dport: 2049, action: 'accept' }])],
};
/** Stateless (this kernel has no bridge conntrack): only the new-connection direction is matched. */
const kvmBridge: NftTable = {
  family: 'bridge', name: 'kumo',
  sets: [{ name: 'lb-backend', type: 'ipv4_addr', elements: ['10.5.3.10'] }],
  chains: [{
    name: 'forward', base: { type: 'filter', hook: 'forward', priority: 'filter', policy: 'accept' },
    rules: [
      { id: 'inst-8080-lb', oif: 'vi*', saddr: { set: 'lb-backend' }, proto: 'tcp', dport: 8080, action: 'accept' },
      { id: 'inst-8080-drop', oif: 'vi*', proto: 'tcp', dport: 8080, action: 'drop' },
      { id: 'stg-2049-instances', iif: 'vi*', oif: 'pst', proto: 'tcp', dport: 2049, action: 'accept' },
      { id: 'stg-2049-drop', oif: 'pst', proto: 'tcp', dport: 2049, action: 'drop' },
    ],
  }],
};

const ip = (...args: string[]) => local.run('ip', args);
async function veth(a: Node, aIf: string, b: Node, bIf: string): Promise<void> {
  await ip('-n', nsName(a), 'link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', nsName(b));
  await ip('-n', nsName(a), 'link', 'set', aIf, 'up');
  await ip('-n', nsName(b), 'link', 'set', bIf, 'up');
}
const addr = (n: Node, dev: string, cidr: string) => ip('-n', nsName(n), 'addr', 'add', cidr, 'dev', dev);
const route = (n: Node, to: string, via: string) => ip('-n', nsName(n), 'route', 'add', to, 'via', via);

function serve(n: Node, port: number, args: string[]): Promise<void> {
  const child = spawn('nsenter', [`--net=/run/netns/${nsName(n)}`, '--', 'busybox', ...args], { stdio: 'ignore' });
  // Kept, not thrown from the handler (that would fail outside any test): the wait below reports it.
  let failure: string | undefined;
  child.on('error', (e) => { failure = `busybox did not start in ${n}: ${e.message}`; });
  child.on('exit', (code, sig) => { failure ??= `busybox ${args[0]} in ${n} exited (${code ?? sig})`; });
  servers.push(child);
  return waitFor(`${n} listening on ${port}`, async () => {
    assert.equal(failure, undefined);
    const r = await at(n).run('ss', ['-Hltn', `sport = :${port}`]);
    return r.stdout.trim() ? true : undefined;
  }, 20_000).then(() => undefined);
}
async function site(name: string, files: Record<string, string>): Promise<string> {
  const dir = join(env.home, name);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
    if (path.startsWith('cgi-bin/')) await chmod(join(dir, path), 0o755);
  }
  return dir;
}

/** The body of an HTTP GET from node `n`, or undefined when the connection fails. */
async function http(n: Node, url: string): Promise<string | undefined> {
  const r = await at(n).run('curl', ['-sf', '--max-time', '3', url], { allowFailure: true });
  return r.code === 0 ? r.stdout.trim() : undefined;
}
/** The banner a TCP server sends to node `n`, or undefined when the connection fails. */
async function tcp(n: Node, host: string, port: number): Promise<string | undefined> {
  const r = await at(n).run('busybox', ['nc', '-w', '3', host, String(port)], { allowFailure: true, timeoutMs: 10_000 });
  return r.code === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}
const ruleset = async (n: Node) => (await at(n).run('nft', ['-s', 'list', 'ruleset'])).stdout;
const counter = async (n: Node, family: 'inet' | 'bridge', id: string) => {
  const c = (await nft(n).counters(family, 'kumo')).find((r) => r.id === id);
  assert.ok(c, `rule ${id} is listed on ${n}`);
  return c.packets ?? 0;
};

before(async () => {
  env = await makeTestEnv('fw');
  for (const n of NODES) {
    await ip('netns', 'add', nsName(n));
    await ip('-n', nsName(n), 'link', 'set', 'lo', 'up');
  }
  await veth('out', 'o0', 'edge', 'eo');
  await veth('edge', 'ei', 'lb', 'lf');
  await veth('lb', 'lb0', 'kvm', 'plb');
  await veth('lb', 'ls', 'kvm', 'pls');
  await veth('i1', 'eth0', 'kvm', 'vi1b');
  await veth('i1', 'eth1', 'kvm', 'vi1s');
  await veth('i2', 'eth0', 'kvm', 'vi2b');
  await veth('i2', 'eth1', 'kvm', 'vi2s');
  await veth('stg', 'eth0', 'kvm', 'pst');
  for (const [br, ports] of [['brb', ['plb', 'vi1b', 'vi2b']], ['brs', ['pls', 'vi1s', 'vi2s', 'pst']]] as const) {
    await ip('-n', nsName('kvm'), 'link', 'add', br, 'type', 'bridge', 'stp_state', '0');
    for (const p of ports) await ip('-n', nsName('kvm'), 'link', 'set', p, 'master', br);
    await ip('-n', nsName('kvm'), 'link', 'set', br, 'up');
  }
  await addr('out', 'o0', '10.5.1.100/24');
  await route('out', '10.5.0.0/16', '10.5.1.1'); // a client that knows the inside: only rules keep it out
  await addr('edge', 'eo', '10.5.1.1/24');
  await addr('edge', 'ei', '10.5.2.1/24');
  await route('edge', '10.5.3.0/24', '10.5.2.10');
  await route('edge', '10.5.4.0/24', '10.5.2.10');
  await addr('lb', 'lf', '10.5.2.10/24');
  await addr('lb', 'lb0', '10.5.3.10/24');
  await addr('lb', 'ls', '10.5.4.10/24');
  await route('lb', 'default', '10.5.2.1');
  for (const [n, last] of [['i1', 21], ['i2', 22]] as const) {
    await addr(n, 'eth0', `10.5.3.${last}/24`);
    await addr(n, 'eth1', `10.5.4.${last}/24`);
    await route(n, 'default', '10.5.3.10');
  }
  await addr('stg', 'eth0', '10.5.4.2/24');
  // New namespaces inherit the host's ip_forward (libvirt turns it on): set each node's own.
  for (const n of ['out', 'i1', 'i2', 'stg'] as const) await at(n).run('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=0']);
  // The routers route from the start (the edge's own is what its rules later take over).
  for (const n of ['lb', 'edge'] as const) await at(n).run('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);

  await serve('lb', 80, ['httpd', '-f', '-p', '80', '-h', await site('lb', { 'index.html': 'lb-page\n' })]);
  await serve('lb', 22, ['nc', '-ll', '-p', '22', '-e', 'echo', 'SSH-lb']);
  await serve('edge', 22, ['nc', '-ll', '-p', '22', '-e', 'echo', 'SSH-edge']);
  await serve('edge', 8080, ['httpd', '-f', '-p', '8080', '-h', await site('edge', { 'index.html': 'edge-admin\n' })]);
  for (const n of ['i1', 'i2'] as const) await serve(n, 8080, ['httpd', '-f', '-p', '8080', '-h', await site(n, { 'index.html': `${n}-page\n` })]);
  await serve('stg', 2049, ['nc', '-ll', '-p', '2049', '-e', 'echo', 'NFS-stg']);
  await serve('out', 8081, ['httpd', '-f', '-p', '8081', '-h', await site('out', {
    'index.html': 'outside\n',
    'cgi-bin/ip': '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n',
  })]);
  for (const n of ['edge', 'kvm'] as const) await at(n).run('nft', ['-f', '-'], { input: FOREIGN });
});

after(async () => {
  for (const s of servers) s.kill('SIGKILL');
  await env?.cleanup();
});

test('without rules the topology is wide open (so every later refusal is the rules\' doing)', async () => {
  assert.equal(await http('out', 'http://10.5.3.21:8080/'), 'i1-page');
  assert.equal(await tcp('lb', '10.5.4.2', 2049), 'NFS-stg');
  assert.equal(await http('stg', 'http://10.5.4.21:8080/'), 'i1-page');
});

test('apply: the datacenter\'s rules enforced on the nodes, proved with packets', async () => {
  const router = new EdgeRouter(at('edge'));
  await router.setIpForwarding(false);
  assert.equal(await router.ipForwarding(), false);
  const outcomes = await router.enable(EDGE, [edgeFilter]);
  assert.deepEqual(outcomes.map((o) => [o.family, o.name, o.changed]), [['ip', 'kumo-nat', true], ['inet', 'kumo', true]]);
  assert.equal(await router.ipForwarding(), true);
  await nft('lb').apply(lbFilter);
  await nft('stg').apply(stgFilter);
  await nft('kvm').apply(kvmBridge);

  // The outside reaches the LB only through the edge's port 80 (DNAT), and SSH on the edge itself.
  assert.equal(await http('out', 'http://10.5.1.1/'), 'lb-page');
  assert.equal(await tcp('out', '10.5.1.1', 22), 'SSH-edge');
  assert.equal(await http('out', 'http://10.5.2.10/'), undefined, 'the LB directly, without the DNAT');
  assert.equal(await tcp('out', '10.5.2.10', 22), undefined, 'SSH to the LB');
  assert.equal(await http('out', 'http://10.5.1.1:8080/'), undefined, 'another port on the edge');
  assert.equal(await http('out', 'http://10.5.3.21:8080/'), undefined, 'an instance directly');
  // SSH on the edge only from the outside.
  assert.equal(await tcp('lb', '10.5.2.1', 22), undefined, 'SSH to the edge from the LB');

  // Backend: only the LB reaches instances' 8080 (filtered on the hypervisor's bridge ports).
  assert.equal(await http('lb', 'http://10.5.3.21:8080/'), 'i1-page');
  assert.equal(await http('lb', 'http://10.5.3.22:8080/'), 'i2-page');
  assert.equal(await http('stg', 'http://10.5.4.21:8080/'), undefined, 'the storage node to an instance');
  assert.equal(await http('i1', 'http://10.5.3.22:8080/'), undefined, 'instance to instance on the same bridge');
  // The LB accepts only port 80 from its frontend.
  assert.equal(await tcp('i1', '10.5.3.10', 22), undefined, 'an instance to the LB\'s SSH');

  // Storage: only instances reach 2049.
  assert.equal(await tcp('i1', '10.5.4.2', 2049), 'NFS-stg');
  assert.equal(await tcp('i2', '10.5.4.2', 2049), 'NFS-stg');
  assert.equal(await tcp('lb', '10.5.4.2', 2049), undefined, 'the LB to the storage node');

  // Internal nodes reach the outside with the edge's address (source NAT).
  assert.match((await http('lb', 'http://10.5.1.100:8081/cgi-bin/ip')) ?? 'no answer', /(^|[^\d])10\.5\.1\.1\]?$/);
  assert.match((await http('i1', 'http://10.5.1.100:8081/cgi-bin/ip')) ?? 'no answer', /(^|[^\d])10\.5\.1\.1\]?$/);

  // Counters read back show where the drops happened.
  assert.ok(await counter('edge', 'inet', 'fwd-drop') > 0, 'edge forward drops');
  assert.ok(await counter('edge', 'inet', 'in-drop') > 0, 'edge input drops');
  assert.ok(await counter('edge', 'inet', 'fwd-tcp-80') > 0, 'the DNATed connection was let through');
  assert.ok(await counter('lb', 'inet', 'in-drop') > 0, 'LB input drops');
  assert.ok(await counter('kvm', 'bridge', 'inst-8080-drop') > 0, 'hypervisor drops to instances');
  assert.ok(await counter('kvm', 'bridge', 'inst-8080-lb') > 0, 'hypervisor lets the LB through');
  assert.ok(await counter('kvm', 'bridge', 'stg-2049-drop') > 0, 'hypervisor drops to storage');
  const natCounters = await nft('edge').counters('inet', 'kumo');
  assert.equal(new Set(natCounters.map((c) => c.id)).size, natCounters.length, 'rule ids are unique');
});

test('defense in depth: without the hypervisor\'s table the storage node still refuses the LB', async () => {
  const before = await counter('stg', 'inet', 'in-drop');
  assert.equal(await nft('kvm').delete('bridge', 'kumo'), true);
  assert.equal(await tcp('lb', '10.5.4.2', 2049), undefined);
  assert.equal(await tcp('i1', '10.5.4.2', 2049), 'NFS-stg');
  assert.ok(await counter('stg', 'inet', 'in-drop') > before, 'the storage node\'s own input dropped it');
  await nft('kvm').apply(kvmBridge);
  assert.equal(await tcp('lb', '10.5.4.2', 2049), undefined);
});

test('re-applying is idempotent: same ruleset text, no duplicate rules; counters survive an unchanged apply', async () => {
  const before = { edge: await ruleset('edge'), kvm: await ruleset('kvm') };
  const drops = await counter('edge', 'inet', 'fwd-drop');
  const again = await new EdgeRouter(at('edge')).enable(EDGE, [edgeFilter]);
  assert.deepEqual(again.map((o) => o.changed), [false, false]);
  assert.equal(await counter('edge', 'inet', 'fwd-drop'), drops, 'an unchanged table is kept, counters included');
  assert.deepEqual((await nft('kvm').apply(kvmBridge)).map((o) => o.changed), [false]);

  // Forced: replaced in place, and still the same text.
  assert.deepEqual((await nft('edge').apply([edgeFilter], { force: true })).map((o) => o.changed), [true]);
  assert.deepEqual((await nft('kvm').apply(kvmBridge, { force: true })).map((o) => o.changed), [true]);
  assert.equal(await ruleset('edge'), before.edge);
  assert.equal(await ruleset('kvm'), before.kvm);
  const ids = (await nft('edge').counters('inet', 'kumo')).map((c) => c.id);
  assert.equal(ids.length, edgeFilter.chains.reduce((n, c) => n + c.rules.length, 0));
  assert.equal(await http('out', 'http://10.5.1.1/'), 'lb-page', 'still routing after the re-apply');

  // A changed spec replaces the table (one more rule), drift is repaired.
  const more: NftTable = { ...lbFilter, chains: [inputChain([
    { id: 'in-http-frontend', iif: 'lf', proto: 'tcp', dport: 80, action: 'accept' },
    { id: 'in-ssh-admin', iif: 'lf', saddr: '10.5.2.1', proto: 'tcp', dport: 22, action: 'accept' },
  ])] };
  assert.deepEqual((await nft('lb').apply(more)).map((o) => o.changed), [true]);
  assert.match((await nft('lb').list('inet', 'kumo')) ?? '', /in-ssh-admin/);
  await at('lb').run('nft', ['add', 'rule', 'inet', 'kumo', 'input', 'accept']); // someone edits kumo's table by hand
  assert.deepEqual((await nft('lb').apply(more)).map((o) => o.changed), [true], 'drift is noticed and replaced');
  assert.doesNotMatch((await nft('lb').list('inet', 'kumo')) ?? '', /^\t\taccept$/m);
  await at('lb').run('nft', ['chain', 'inet', 'kumo', 'input', '{', 'policy', 'accept', ';', '}']); // or opens its policy
  assert.deepEqual((await nft('lb').apply(more)).map((o) => o.changed), [true], 'a changed policy is noticed too');
  assert.match((await nft('lb').list('inet', 'kumo')) ?? '', /hook input priority filter; policy drop;/);
  await nft('lb').apply(lbFilter);
});

test('foreign tables survive apply and delete, and kumo refuses to take them over', async () => {
  assert.equal(await nft('edge').list('inet', 'other'), FOREIGN);
  assert.equal(await nft('kvm').list('inet', 'other'), FOREIGN);
  const takeOver: NftTable = { family: 'inet', name: 'other', chains: [] };
  await assert.rejects(nft('edge').apply(takeOver), (e: unknown) => e instanceof KumoError && e.code === 'ALREADY_EXISTS' && /not made by kumo/.test(e.message) && !!e.fix);
  await assert.rejects(nft('edge').delete('inet', 'other'), (e: unknown) => e instanceof KumoError && e.code === 'IN_USE');
  assert.equal(await nft('edge').list('inet', 'other'), FOREIGN);
});

test('bad input is refused with the problem and the fix, and nothing is applied', async () => {
  const before = await ruleset('edge');
  const input = edgeFilter.chains[0]!;
  const withRule = (rule: object): NftTable =>
    ({ ...edgeFilter, chains: [{ ...input, rules: [rule as NftTable['chains'][number]['rules'][number], ...input.rules] }, edgeFilter.chains[1]!] });
  const cases: [string, NftTable, RegExp][] = [
    ['bad CIDR', withRule({ id: 'x', saddr: '10.5.1.0/33', action: 'accept' }), /10\.5\.1\.0\/33.*above \/32/],
    ['host bits', withRule({ id: 'x', saddr: '10.5.1.7/24', action: 'accept' }), /host bits.*10\.5\.1\.0\/24/],
    ['port 70000', withRule({ id: 'x', proto: 'tcp', dport: 70000, action: 'accept' }), /port 70000 is out of range.*1 to 65535/],
    ['iface with space', withRule({ id: 'x', iif: 'eth 0', action: 'accept' }), /interface "eth 0".*no spaces or quotes/],
    ['iface with quote', withRule({ id: 'x', iif: 'eo" accept #', action: 'accept' }), /not a valid interface name/],
    ['id with quote', withRule({ id: 'x" drop', action: 'accept' }), /rule id .* is not valid/],
    ['table name with space', { ...edgeFilter, name: 'kumo edge' }, /table "kumo edge" is not a valid name.*no spaces or quotes/],
    ['table name with quote', { ...edgeFilter, name: 'kumo"' }, /not a valid name/],
    ['keyword name', { ...edgeFilter, name: 'accept' }, /reserves.*kumo-accept/],
  ];
  for (const [what, table, says] of cases) {
    const router = new EdgeRouter(at('edge'));
    await assert.rejects(router.enable(EDGE, [table]), (e: unknown) =>
      e instanceof KumoError && e.code === 'INVALID_INPUT' && !!e.fix && says.test(`${e.message} ${e.fix}`), what);
  }
  await assert.rejects(new EdgeRouter(at('edge')).enable({ ...EDGE, forwards: [{ proto: 'tcp', port: 80, to: '10.5.2.300' }] }, [edgeFilter]),
    (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && /above 255/.test(e.message));
  assert.equal(await ruleset('edge'), before, 'the ruleset did not change');
});

test('one transaction: when nft refuses part of it, no table changes', async () => {
  const before = await ruleset('edge');
  // The same node, but the transaction text gets a line nft refuses appended to its end.
  const broken: Executor = {
    description: 'edge with a broken transaction',
    run: (command: string, args: readonly string[], options: RunOptions = {}) =>
      at('edge').run(command, args, command === 'nft' && args.includes('-f')
        ? { ...options, input: `${String(options.input)}add rule inet kumo no-such-chain accept\n` } : options),
    open: (command: string, args: readonly string[]) => at('edge').open(command, args),
  };
  const changed: NftTable = { ...edgeFilter, chains: [inputChain([]), edgeFilter.chains[1]!] };
  await assert.rejects(new Nftables(broken).apply([changed], { force: true }),
    (e: unknown) => e instanceof KumoError && e.code === 'COMMAND_FAILED' && /nothing was changed/.test(e.message));
  assert.equal(await ruleset('edge'), before);
  assert.equal(await tcp('out', '10.5.1.1', 22), 'SSH-edge', 'the old rules still run');
});

test('delete removes only kumo\'s tables; the router stops routing', async () => {
  const router = new EdgeRouter(at('edge'));
  await router.disable();
  assert.equal(await router.ipForwarding(), false);
  assert.equal(await nft('edge').list('ip', 'kumo-nat'), undefined);
  assert.equal(await http('out', 'http://10.5.1.1/'), undefined, 'no DNAT any more');
  for (const [n, family] of [['edge', 'inet'], ['lb', 'inet'], ['stg', 'inet'], ['kvm', 'bridge']] as const) {
    assert.equal(await nft(n).delete(family, 'kumo'), true);
    assert.equal(await nft(n).delete(family, 'kumo'), false, 'deleting again is harmless');
    assert.equal(await nft(n).list(family, 'kumo'), undefined);
  }
  assert.equal(await ruleset('edge'), FOREIGN);
  assert.equal(await ruleset('kvm'), FOREIGN);
  assert.equal(await http('stg', 'http://10.5.4.21:8080/'), 'i1-page', 'the hypervisor no longer filters');
});
