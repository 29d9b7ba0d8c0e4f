import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { Executor, OpenedProcess, RunOptions, RunResult } from '../../src/exec/exec.js';
import { KumoError } from '../../src/model/errors.js';
import {
  type NftRule, type NftTable, Nftables, listingMatches, parseCounters, parseListing, renderDelete, renderReplace, renderRule,
  renderTable, tableMark, validateTable,
} from '../../src/drivers/net/nftables.js';
import { type EdgeSpec, EdgeRouter, edgeForwardRules, edgeNatTable } from '../../src/drivers/net/router.js';

const edge: EdgeSpec = {
  outside: 'eo', publicAddress: '10.5.1.1', internal: ['10.5.2.0/24', '10.5.3.0/24'],
  forwards: [{ proto: 'tcp', port: 80, to: '10.5.2.10' }, { proto: 'tcp', port: 8443, to: '10.5.2.10', toPort: 443 }],
};

const filter: NftTable = {
  family: 'inet', name: 'kumo',
  sets: [
    { name: 'instances', type: 'ipv4_addr', elements: ['10.5.4.16/28', '10.5.9.7/32'] },
    { name: 'web', type: 'inet_service', elements: [80, { from: 8000, to: 8080 }] },
  ],
  chains: [
    {
      name: 'input', base: { type: 'filter', hook: 'input', priority: 'filter', policy: 'drop' },
      rules: [
        { id: 'lo', iif: 'lo', action: 'accept', counter: false },
        { id: 'est', ct: ['established', 'related'], action: 'accept' },
        { id: 'web', iif: ['eo', 'vnet*'], saddr: { set: 'instances' }, proto: 'tcp', dport: { set: 'web' }, action: 'accept' },
        { id: 'nfs', saddr: ['10.5.4.0/24', '10.6.0.1'], daddr: { not: '10.5.4.2' }, proto: 'udp', sport: { not: [1, 2] }, dport: 2049, action: 'accept' },
        { id: 'ping', proto: 'icmp', action: { jump: 'icmp-limits' } },
        { id: 'drop', log: 'kumo drop: ', action: 'reject' },
      ],
    },
    { name: 'icmp-limits', rules: [{ id: 'icmp-ok', oif: { not: ['x1', 'x2'] }, action: 'return' }] },
  ],
};

test('a table renders to nft\'s text syntax, in one predictable shape', () => {
  const text = renderTable(filter);
  assert.equal(text, `table inet kumo {
\tcomment "${tableMark(filter)}"
\tset instances {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 10.5.4.16/28, 10.5.9.7 }
\t}
\tset web {
\t\ttype inet_service
\t\tflags interval
\t\telements = { 80, 8000-8080 }
\t}
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tiifname "lo" accept comment "lo"
\t\tct state { established, related } counter accept comment "est"
\t\tiifname { "eo", "vnet*" } ip saddr @instances tcp dport @web counter accept comment "web"
\t\tip saddr { 10.5.4.0/24, 10.6.0.1 } ip daddr != 10.5.4.2 udp sport != { 1, 2 } udp dport 2049 counter accept comment "nfs"
\t\tmeta l4proto icmp counter jump icmp-limits comment "ping"
\t\tcounter log prefix "kumo drop: " reject comment "drop"
\t}
\tchain icmp-limits {
\t\toifname != { "x1", "x2" } counter return comment "icmp-ok"
\t}
}
`);
  assert.match(tableMark(filter), /^kumo [0-9a-f]{24}$/);
});

test('the edge router\'s NAT: dnat/snat in an ip table, "dnat ip to" in an inet one', () => {
  assert.equal(renderTable(edgeNatTable(edge)).split('\n').slice(2).join('\n'), `\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tiifname "eo" ip daddr 10.5.1.1 tcp dport 80 counter dnat to 10.5.2.10:80 comment "dnat-tcp-80"
\t\tiifname "eo" ip daddr 10.5.1.1 tcp dport 8443 counter dnat to 10.5.2.10:443 comment "dnat-tcp-8443"
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "eo" ip saddr { 10.5.2.0/24, 10.5.3.0/24 } counter snat to 10.5.1.1 comment "snat-out"
\t}
}
`);
  const dynamic = edgeNatTable({ ...edge, publicAddress: undefined, natTable: 'kumo-nat2' });
  assert.equal(dynamic.name, 'kumo-nat2');
  assert.match(renderTable(dynamic), /oifname "eo" ip saddr \{ 10\.5\.2\.0\/24, 10\.5\.3\.0\/24 \} counter masquerade comment "snat-out"/);
  assert.doesNotMatch(renderTable(dynamic), /ip daddr/);
  assert.equal(renderRule('inet', { id: 'd', proto: 'tcp', dport: 80, action: { dnat: '10.5.2.10', port: 80 } }),
    'tcp dport 80 counter dnat ip to 10.5.2.10:80 comment "d"');
  assert.deepEqual(edgeForwardRules(edge).map((r) => renderRule('inet', r)), [
    'ct state { established, related } counter accept comment "fwd-established"',
    'ct state invalid counter drop comment "fwd-invalid"',
    'iifname "eo" ip daddr 10.5.2.10 tcp dport 80 ct status dnat counter accept comment "fwd-tcp-80"',
    'iifname "eo" ip daddr 10.5.2.10 tcp dport 443 ct status dnat counter accept comment "fwd-tcp-8443"',
    'iifname != "eo" oifname "eo" ip saddr { 10.5.2.0/24, 10.5.3.0/24 } counter accept comment "fwd-internal-out"',
  ]);
});

test('one transaction replaces exactly the given tables', () => {
  const nat = edgeNatTable(edge);
  const text = renderReplace([filter, nat]);
  assert.ok(text.startsWith('add table inet kumo\ndelete table inet kumo\ntable inet kumo {\n'));
  assert.match(text, /\}\nadd table ip kumo-nat\ndelete table ip kumo-nat\ntable ip kumo-nat \{\n/);
  const touched = [...text.matchAll(/^(?:add table|delete table|table) (\S+ \S+)/gm)].map((m) => m[1]);
  assert.deepEqual([...new Set(touched)], ['inet kumo', 'ip kumo-nat'], 'no other table is named, no flush ruleset');
  assert.doesNotMatch(text, /ruleset/);
  assert.equal(renderDelete([{ family: 'bridge', name: 'kumo' }]), 'add table bridge kumo\ndelete table bridge kumo\n');
});

test('the mark follows the contents', () => {
  assert.equal(tableMark(filter), tableMark(structuredClone(filter)));
  const other = { ...filter, chains: [filter.chains[0]!, { ...filter.chains[1]!, rules: [] }] };
  assert.notEqual(tableMark(filter), tableMark(other));
  assert.notEqual(tableMark(filter), tableMark({ ...filter, name: 'kumo-b' }));
});

/** A valid table with one rule or one field replaced. */
function withRule(rule: Partial<NftRule> & object, chain = 0): NftTable {
  const c = filter.chains[chain]!;
  return { ...filter, chains: filter.chains.map((x) => (x === c ? { ...c, rules: [{ id: 'new', action: 'accept', ...rule } as NftRule, ...c.rules] } : x)) };
}
// JSON-shaped input from a file would reach the driver unchecked by TypeScript: tests cast on purpose.
const loose = (v: unknown) => v as NftTable;

test('bad input is refused with the problem and its fix, before anything is rendered', () => {
  const cases: [string, NftTable, RegExp][] = [
    ['CIDR prefix', withRule({ saddr: '10.5.1.0/33' }), /"10\.5\.1\.0\/33" has prefix \/33, above \/32/],
    ['not a CIDR', withRule({ saddr: '10.5.1' }), /not an IPv4 address or CIDR/],
    ['octet', withRule({ daddr: ['10.5.1.256'] }), /above 255/],
    ['leading zero', withRule({ saddr: '10.05.1.0/24' }), /leading zero.*10\.5\.1\.0\/24/],
    ['host bits', withRule({ saddr: '10.5.1.7/24' }), /host bits set.*did you mean 10\.5\.1\.0\/24/],
    ['overlap', withRule({ saddr: ['10.0.0.0/8', '10.5.1.0/24'] }), /10\.0\.0\.0\/8 and 10\.5\.1\.0\/24 overlap/],
    ['port 70000', withRule({ proto: 'tcp', dport: 70000 }), /port 70000 is out of range.*1 to 65535/],
    ['port 0', withRule({ proto: 'tcp', dport: [0] }), /port 0 is out of range/],
    ['port 1.5', withRule({ proto: 'tcp', dport: 1.5 }), /port 1\.5 is out of range/],
    ['port text', withRule({ proto: 'tcp', dport: '22; flush ruleset' as unknown as number }), /out of range/],
    ['reversed range', withRule({ proto: 'tcp', dport: { from: 90, to: 80 } }), /90-80 is empty or reversed/],
    ['port without proto', withRule({ dport: 80 }), /dport needs a protocol.*proto: "tcp"/],
    ['iface space', withRule({ iif: 'eth 0' }), /interface "eth 0" is not a valid interface name.*no spaces or quotes/],
    ['iface quote', withRule({ oif: 'eo" accept comment "x' }), /not a valid interface name/],
    ['iface too long', withRule({ iif: 'a23456789012345x' }), /not a valid interface name.*up to 15/],
    ['iface star only', withRule({ iif: '*' }), /not a valid interface name/],
    ['iface newline', withRule({ iif: 'eo\n' }), /not a valid interface name/],
    ['empty list', withRule({ iif: [] }), /iif is an empty list/],
    ['id space', withRule({ id: 'a b' }), /rule id "a b" is not valid.*no spaces or quotes/],
    ['id quote', withRule({ id: 'a"b' }), /rule id .* is not valid/],
    ['duplicate id', withRule({ id: 'web' }), /id is used twice/],
    ['log quote', withRule({ log: 'x" drop #' }), /log prefix .* is not allowed.*no quotes/],
    ['log newline', withRule({ log: 'x\nflush ruleset' }), /log prefix .* is not allowed/],
    ['unknown set', withRule({ saddr: { set: 'nope' } }), /no set nope.*add a set named nope/],
    ['set type', withRule({ saddr: { set: 'web' } }), /set web holds inet_service, not ipv4_addr/],
    ['ct state', withRule({ ct: ['established', 'bogus'] as unknown as NftRule['ct'] }), /not a list of connection states/],
    ['dnat in filter', withRule({ action: { dnat: '10.5.2.10' } }), /dnat works only in a nat chain/],
    ['masquerade in filter', withRule({ action: 'masquerade' }), /masquerade works only in a nat chain/],
    ['jump unknown', withRule({ action: { jump: 'nowhere' } }), /no chain nowhere to jump to/],
    ['jump base', withRule({ action: { jump: 'input' } }), /cannot be jumped to/],
    ['jump loop', withRule({ action: { jump: 'icmp-limits' } }, 1), /jump in a loop \(icmp-limits → icmp-limits\)/],
    ['action', withRule({ action: 'accept; flush ruleset' as unknown as NftRule['action'] }), /action .* is not supported/],
    ['table name space', { ...filter, name: 'kumo x' }, /table "kumo x" is not a valid name.*no spaces or quotes/],
    ['table name quote', { ...filter, name: 'kumo"' }, /table "kumo\\"" is not a valid name/],
    ['table keyword', { ...filter, name: 'table' }, /table "table" is a word nft reserves.*kumo-table/],
    ['chain keyword', { ...filter, chains: [{ ...filter.chains[0]!, name: 'accept' }, filter.chains[1]!] }, /chain in table inet kumo: "accept" is a word nft reserves/],
    ['duplicate chain', { ...filter, chains: [filter.chains[0]!, filter.chains[0]!] }, /two chains named input/],
    ['family', loose({ ...filter, family: 'arp' }), /family "arp" is not supported/],
    ['hook', loose({ ...filter, chains: [{ name: 'c', base: { type: 'filter', hook: 'ingress', priority: 0 }, rules: [] }] }), /hook "ingress" is not supported/],
    ['priority name', { ...filter, chains: [{ name: 'c', base: { type: 'filter', hook: 'input', priority: 'out' }, rules: [] }] }, /"out" is not a priority name of the inet family/],
    ['priority number', { ...filter, chains: [{ name: 'c', base: { type: 'filter', hook: 'input', priority: 0.5 }, rules: [] }] }, /priority 0\.5/],
    ['nat forward', { ...filter, chains: [{ name: 'c', base: { type: 'nat', hook: 'forward', priority: 0 }, rules: [] }] }, /NAT chains cannot hook forward/],
  ];
  for (const [what, table, says] of cases) {
    assert.throws(() => renderTable(table), (e: unknown) => {
      assert.ok(e instanceof KumoError, `${what}: ${String(e)}`);
      assert.equal(e.code, 'INVALID_INPUT', what);
      assert.ok(e.fix, `${what} has a fix`);
      assert.match(`${e.message} ${e.fix}`, says, what);
      return true;
    }, what);
  }
});

/** Throws INVALID_INPUT whose message and fix together match `says`. */
function refuses(fn: () => unknown, says: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && !!e.fix && says.test(`${e.message} ${e.fix}`), String(says));
}

test('the bridge family: stateless rules only, no reject, no NAT', () => {
  const bridge = (rule: Partial<NftRule>): NftTable => ({
    family: 'bridge', name: 'kumo',
    chains: [{ name: 'forward', base: { type: 'filter', hook: 'forward', priority: 'filter' }, rules: [{ id: 'r', action: 'drop', ...rule }] }],
  });
  assert.match(renderTable(bridge({ oif: 'vnet*', saddr: { not: '10.5.3.10' }, proto: 'tcp', dport: 8080 })),
    /oifname "vnet\*" ip saddr != 10\.5\.3\.10 tcp dport 8080 counter drop comment "r"/);
  refuses(() => validateTable(bridge({ ct: ['established'] })), /bridge family cannot match connection state.*statelessly/);
  refuses(() => validateTable(bridge({ ctStatus: 'dnat' })), /bridge family cannot match connection state/);
  refuses(() => validateTable(bridge({ action: 'reject' })), /bridge chains cannot reject here.*use drop/);
  refuses(() => validateTable({ family: 'bridge', name: 'k', chains: [{ name: 'p', base: { type: 'nat', hook: 'prerouting', priority: 'dstnat' }, rules: [] }] }),
    /bridge family has no IP NAT/);
  refuses(() => validateTable({ family: 'bridge', name: 'k', chains: [{ name: 'p', base: { type: 'filter', hook: 'input', priority: 'mangle' }, rules: [] }] }),
    /not a priority name of the bridge family/);
});

test('edge router input is checked like rules are', () => {
  for (const [spec, says] of [
    [{ ...edge, outside: 'e o' }, /not a valid interface name/],
    [{ ...edge, outside: 'eth*' }, /one interface, not a prefix/],
    [{ ...edge, publicAddress: '10.5.1.0/24' }, /is a network/],
    [{ ...edge, internal: [] }, /no internal networks/],
    [{ ...edge, internal: ['10.5.2.1/24'] }, /host bits/],
    [{ ...edge, forwards: [{ proto: 'tcp', port: 80, to: '10.5.2.10', toPort: 70000 }] }, /port 70000/],
    [{ ...edge, forwards: [...edge.forwards, { proto: 'tcp', port: 80, to: '10.5.2.11' }] }, /forwarded twice/],
    [{ ...edge, natTable: 'nat table' }, /not a valid name/],
  ] as [EdgeSpec, RegExp][]) {
    assert.throws(() => edgeNatTable(spec), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && !!e.fix && says.test(e.message), String(says));
  }
});

/** What `nft -s list table` prints for a table kumo loaded (nft 1.0.6 puts a blank line between blocks). */
function listing(t: NftTable, extraRule?: string): string {
  const text = renderTable(t).replace(/\t\}\n\t(chain|set) /g, '\t}\n\n\t$1 ');
  return extraRule ? text.replace('\t}\n\n\tchain icmp-limits', `\t\t${extraRule}\n\t}\n\n\tchain icmp-limits`) : text;
}

test('reading nft\'s listing: the mark, rule ids per chain, set sizes; drift is noticed', () => {
  const live = parseListing(listing(filter));
  assert.equal(live.comment, tableMark(filter));
  assert.deepEqual(live.chains.get('input'), { base: { type: 'filter', hook: 'input', policy: 'drop' }, ids: ['lo', 'est', 'web', 'nfs', 'ping', 'drop'] });
  assert.deepEqual(live.chains.get('icmp-limits'), { ids: ['icmp-ok'] });
  assert.deepEqual(live.setSizes, new Map([['instances', 2], ['web', 2]]));
  assert.ok(listingMatches(filter, live));
  assert.ok(!listingMatches(filter, parseListing(listing(filter, 'accept'))), 'a rule added by hand');
  assert.ok(!listingMatches(filter, parseListing(listing(filter).replace('80, 8000-8080', '80, 81, 8000-8080'))), 'a set element added by hand');
  assert.ok(!listingMatches(withRule({}), live), 'another spec');
  assert.ok(!listingMatches(filter, parseListing(listing(filter).replace('policy drop;', 'policy accept;'))), 'a policy changed by hand');
  // A multi-line set listing, as nft prints long sets.
  const wrapped = parseListing('table inet t {\n\tset s {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.0.0.1, 10.0.0.2,\n\t\t\t     10.0.0.3 }\n\t}\n}\n');
  assert.equal(wrapped.setSizes.get('s'), 3);
});

test('counters are read by rule id from nft\'s JSON', () => {
  const json = JSON.stringify({ nftables: [
    { metainfo: { version: '1.0.6' } },
    { table: { family: 'inet', name: 'kumo', handle: 1 } },
    { chain: { family: 'inet', table: 'kumo', name: 'input', handle: 1 } },
    { rule: { family: 'inet', table: 'kumo', chain: 'input', handle: 2, comment: 'lo', expr: [{ match: {} }, { accept: null }] } },
    { rule: { family: 'inet', table: 'kumo', chain: 'input', handle: 3, comment: 'drop', expr: [{ counter: { packets: 7, bytes: 420 } }, { drop: null }] } },
    { rule: { family: 'inet', table: 'kumo', chain: 'input', handle: 4, expr: [{ accept: null }] } },
  ] });
  assert.deepEqual(parseCounters(json), [{ id: 'lo', chain: 'input' }, { id: 'drop', chain: 'input', packets: 7, bytes: 420 }]);
});

/** An executor that answers like nft would for one table's current text, and records what it was asked. */
class FakeNft implements Executor {
  readonly description = 'fake node';
  calls: { args: readonly string[]; input?: string }[] = [];
  constructor(public current?: string) {}
  async run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    assert.equal(command === 'nft' || command === 'sysctl', true, command);
    this.calls.push({ args, ...(options.input !== undefined ? { input: String(options.input) } : {}) });
    if (command === 'sysctl') return { stdout: args.includes('-n') ? '1\n' : '', stderr: '', code: 0 };
    if (args[0] === '-s' && args[1] === 'list') {
      return this.current === undefined
        ? { stdout: '', stderr: `Error: No such file or directory\nlist table ${args[3]} ${args[4]}\n`, code: 1 }
        : { stdout: this.current, stderr: '', code: 0 };
    }
    return { stdout: '', stderr: '', code: 0 };
  }
  loads(): string[] { return this.calls.filter((c) => c.args.join(' ') === '-f -').map((c) => c.input ?? ''); }
  open(): Promise<OpenedProcess> { throw new Error('nft runs to completion: nothing is opened'); }
}

test('apply: one nft -f - for a new table; an unchanged table is kept; forced or drifted ones replaced', async () => {
  const fresh = new FakeNft();
  assert.deepEqual(await new Nftables(fresh).apply(filter), [{ family: 'inet', name: 'kumo', changed: true }]);
  assert.deepEqual(fresh.loads(), [renderReplace([filter])]);

  const same = new FakeNft(listing(filter));
  assert.deepEqual((await new Nftables(same).apply(filter)).map((o) => o.changed), [false]);
  assert.deepEqual(same.loads(), []);
  assert.deepEqual((await new Nftables(same).apply(filter, { force: true })).map((o) => o.changed), [true]);
  assert.equal(same.loads().length, 1);

  const drifted = new FakeNft(listing(filter, 'accept'));
  assert.deepEqual((await new Nftables(drifted).apply(filter)).map((o) => o.changed), [true]);
});

test('apply and delete refuse tables kumo did not make, and bad specs, without loading anything', async () => {
  const foreign = new FakeNft('table inet kumo {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n');
  await assert.rejects(new Nftables(foreign).apply(filter), (e: unknown) => e instanceof KumoError && e.code === 'ALREADY_EXISTS' && /not made by kumo/.test(e.message));
  await assert.rejects(new Nftables(foreign).delete('inet', 'kumo'), (e: unknown) => e instanceof KumoError && e.code === 'IN_USE');
  const userComment = new FakeNft('table inet kumo {\n\tcomment "my own"\n}\n');
  await assert.rejects(new Nftables(userComment).apply(filter), /not made by kumo/);
  assert.deepEqual([...foreign.loads(), ...userComment.loads()], []);

  const node = new FakeNft();
  await assert.rejects(new Nftables(node).apply([filter, withRule({ saddr: '1.2.3.4/40' })]), /above \/32/);
  await assert.rejects(new Nftables(node).apply([filter, filter]), /given twice/);
  await assert.rejects(new EdgeRouter(node).enable({ ...edge, internal: ['x'] }), /not an IPv4 address/);
  assert.deepEqual(node.calls, [], 'validation happens before any command');

  const mine = new FakeNft(listing(filter));
  assert.equal(await new Nftables(mine).delete('inet', 'kumo'), true);
  assert.deepEqual(mine.loads(), ['add table inet kumo\ndelete table inet kumo\n']);
  assert.equal(await new Nftables(new FakeNft()).delete('inet', 'kumo'), false);
});

test('the edge router applies its tables before it turns forwarding on', async () => {
  const node = new FakeNft();
  await new EdgeRouter(node).enable(edge, [filter]);
  const order = node.calls.map((c) => `${c.args[0]} ${c.args[1]}`);
  assert.ok(order.indexOf('-f -') < order.findIndex((c) => c.startsWith('-q -w')), order.join(', '));
  assert.deepEqual(node.calls.find((c) => c.args[0] === '-q')?.args, ['-q', '-w', 'net.ipv4.ip_forward=1']);
  assert.equal(node.loads().length, 1, 'NAT and filter in one transaction');
});

/** The oracle: nft itself checks every rendering (in a throwaway network namespace; root only). */
test('nft accepts every rendering (nft -c in a private network namespace)', (t) => {
  try { execFileSync('unshare', ['-n', 'true'], { stdio: 'ignore' }); } catch { t.skip('needs root for unshare -n'); return; }
  const bridge: NftTable = {
    family: 'bridge', name: 'kumo', sets: [{ name: 'lb', type: 'ipv4_addr', elements: ['10.5.3.10'] }],
    chains: [{ name: 'forward', base: { type: 'filter', hook: 'forward', priority: 'filter', policy: 'accept' }, rules: [
      { id: 'a', oif: 'vi*', saddr: { set: 'lb' }, proto: 'tcp', dport: 8080, action: 'accept' },
      { id: 'b', oif: ['vi1', 'vi2'], proto: 'tcp', dport: [8080, { from: 9000, to: 9100 }], log: 'kumo br: ', action: 'drop' },
    ] }],
  };
  const edgeFilter: NftTable = { family: 'inet', name: 'kumo-edge', chains: [
    { name: 'forward', base: { type: 'filter', hook: 'forward', priority: 0, policy: 'drop' }, rules: edgeForwardRules(edge) },
    { name: 'nat-in', base: { type: 'nat', hook: 'prerouting', priority: 'dstnat' }, rules: [{ id: 'n', proto: 'tcp', dport: 80, action: { dnat: '10.5.2.10', port: 80 } }] },
    { name: 'nat-out', base: { type: 'nat', hook: 'postrouting', priority: 'srcnat' }, rules: [{ id: 's', oif: 'eo', action: { snat: '10.5.1.1' } }] },
  ] };
  const text = renderReplace([filter, edgeNatTable(edge), bridge, edgeFilter]);
  execFileSync('unshare', ['-n', 'nft', '-c', '-f', '-'], { input: text, stdio: ['pipe', 'ignore', 'pipe'] });
});
