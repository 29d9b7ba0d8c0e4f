import { invalid } from '../../../model/errors.js';
import { NFT_IDENTIFIER, broadcast, checkNameBy, formatCidr, formatIp, isPort, readCidr } from '../../../model/checks.js';
import { type NftFamily, type NftHook, type NftNamedPriority, type CtState, type CtStatus, type SetRef, type NftRule, type NftBaseChain, type NftChain, type NftSet, type NftTable, isNot, isSetRef, many } from './types.js';

/**
 * Strict checks of a table before it is rendered: every value against a closed set or a strict
 * pattern (see ../nftables.ts), names against nft's keywords, jumps without loops.
 */

/**
 * Words nft's parser takes as keywords (from nftables' src/scanner.l, 2026): an unquoted
 * identifier equal to one is a syntax error, and nft 1.0 accepts no quoted table names.
 */
const NFT_KEYWORDS = new Set(`8021ad 8021q a-rwnd abort accept ackseq add addr ah alert all and arp asconf
asconf-ack audit auto-merge avgpkt bridge broute burst bypass bytes cfi cgroup cgroupv2 chain chains check
checksum chunk class classid code comment comp constant continue cookie-ack cookie-echo count counter
counters cpi cpu create crit csumcov ct cum-tsn-ack cwr daddr data day dccp debug define dei delete describe
destroy device devices direction dnat doff dport drop dscp dst dup dynamic echo ecn ecne egress element
elements emerg eol eq err error erspan esp ether event exists expectation expiration expires export exthdr
fanout fastopen fib filter flags flow flowlabel flowtable flowtables flush forward-tsn frag frag-off
fully-random fwd gateway gbp gc-interval ge geneve get goto gre gretap group gt handle hbh hdrlength
heartbeat heartbeat-ack helper helpers hlen hook hooks hoplimit hour htype ibrhwaddr ibriport ibrname
ibrpvid ibrvproto icmp icmpv6 icmpx id igmp iif iifgroup iifkind iifname iiftype import in inc include
index inet info ingress init init-ack init-tag initial-tsn insert interval ip ip6 ipsec jhash json jump
kbytes l3proto l4proto label last last-entry le left length level limit limits list ll log loose lowest-tsn
lshift lsrr lt map maps mark masquerade max-delay maxseg mbytes md5sig memory meta meter meters mh minute
missing mod monitor more-fragments mptcp mrt mss mtu name nat ne netdev never new new-cum-tsn nexthdr
nexthop nfproto nftrace nh noop nop not notice notrack num num-dup-tsns num-gap-ack-blocks
num-inbound-streams num-outbound-streams numgen obriport obrname offload offset oif oifgroup oifkind
oifname oiftype operation opt-type option options or original osf out over packets param-problem path pcp
performance persistent pkttype plen policy port position ppid prefix priority proto-dst proto-src protocol
ptr ptype queue queue-threshold quota quotas ra random rate redefine redirect reject rename replace reply
reqid reserved reserved2 reset return right route rr rshift rt rt0 rt2 rtclassid rule rules ruleset sack
sack-perm sack-permitted sack0 sack1 sack2 sack3 saddr sctp sdif sdifname secmark secmarks second secpath
seed seg-left seqno sequence set sets shutdown shutdown-ack shutdown-complete sid size skgid skip skuid
snaplen snat socket spi spnum sport srh ssn ssrr state status stream subtype symhash synproxy synproxys
table tables taddr tag tcp th time timeout timestamp to tos tproxy trace transparent tsecr tsn tsval ttl
tunnel tunnels type typeof udp udplite undefine until update urgptr used value version vlan vm vmap vni
vtag vxlan warn week wildcard window with wscale xml xor xt zone`.split(/\s+/));

const FAMILIES: readonly NftFamily[] = ['inet', 'ip', 'bridge'];
const HOOKS: readonly NftHook[] = ['prerouting', 'input', 'forward', 'output', 'postrouting'];
const CT_STATES: readonly CtState[] = ['new', 'established', 'related', 'invalid', 'untracked'];
const CT_STATUSES: readonly CtStatus[] = ['dnat', 'snat'];
const PRIORITY_NAMES: Record<NftFamily, readonly NftNamedPriority[]> = {
  inet: ['raw', 'mangle', 'dstnat', 'filter', 'security', 'srcnat'],
  ip: ['raw', 'mangle', 'dstnat', 'filter', 'security', 'srcnat'],
  bridge: ['dstnat', 'filter', 'out', 'srcnat'],
};

export function checkFamily(family: unknown): void {
  if (!FAMILIES.includes(family as NftFamily)) throw invalid(`table family ${JSON.stringify(family)} is not supported`, `use one of ${FAMILIES.join(', ')}`);
}

/** Table, chain and set names: lower-case words nft parses as identifiers (not keywords). */
export function checkName(name: unknown, what: string): string {
  const word = checkNameBy(NFT_IDENTIFIER, name, what, 'kumo-edge');
  if (NFT_KEYWORDS.has(word)) {
    throw invalid(`${what} "${word}" is a word nft reserves`, `choose another name, e.g. kumo-${word}`);
  }
  return word;
}

/** Linux interface names (at most 15 bytes); a trailing `*` makes a prefix match. */
export function checkIfname(name: unknown, where: string): string {
  const base = typeof name === 'string' && name.endsWith('*') ? name.slice(0, -1) : name;
  const ok = typeof name === 'string' && typeof base === 'string' && name.length <= 15
    && /^[A-Za-z0-9_.-]+$/.test(base) && base !== '.' && base !== '..';
  if (!ok) {
    throw invalid(`${where}: interface ${JSON.stringify(name)} is not a valid interface name`,
      'use up to 15 letters, digits, "-", "_" or "." (no spaces or quotes); end with * to match a prefix, e.g. vnet*');
  }
  return name;
}

/** An IPv4 address or network: its first and last address as 32-bit numbers, and nft's text for it. */
export function checkAddr(text: unknown, where: string): { text: string; first: number; last: number } {
  const bad = (why: string, fix: string) => invalid(`${where}: ${JSON.stringify(text)} ${why}`, fix);
  const notAddr = () => bad('is not an IPv4 address or CIDR', 'write an address like 10.5.1.7 or a network like 10.5.1.0/24');
  if (typeof text !== 'string') throw notAddr();
  const r = readCidr(text, { bare: true });
  if (!r.ok) {
    switch (r.fault) {
      case 'shape': case 'syntax': throw notAddr();
      case 'leading-zero':
        throw bad('has an octet with a leading zero',
          `write it without leading zeros: ${r.address.split('.').map(Number).join('.')}${r.prefixText ? `/${r.prefixText}` : ''}`);
      case 'octet-range': throw bad('has an octet above 255', 'each of the four numbers must be 0-255, e.g. 10.5.1.7');
      case 'prefix-range': throw bad(`has prefix /${r.prefix}, above /32`, 'use a prefix from /0 to /32, e.g. 10.5.1.0/24');
      case 'host-bits': throw bad('has host bits set', `did you mean ${formatIp(r.network)}/${r.prefix}?`);
    }
  }
  const subnet = { network: r.network, prefix: r.prefix };
  return { text: r.prefix === 32 ? formatIp(r.network) : formatCidr(subnet), first: r.network, last: broadcast(subnet) };
}

export function checkPort(port: unknown, where: string): number {
  if (!isPort(port)) {
    throw invalid(`${where}: port ${JSON.stringify(port)} is out of range`, 'use a whole number from 1 to 65535, e.g. 8080');
  }
  return port;
}

export function checkPortItem(p: unknown, where: string): { text: string; first: number; last: number } {
  if (typeof p === 'object' && p !== null) {
    const range = p as { from?: unknown; to?: unknown };
    const [a, b] = [checkPort(range.from, where), checkPort(range.to, where)];
    if (a >= b) throw invalid(`${where}: port range ${a}-${b} is empty or reversed`, 'write the lower port as from and the higher as to, e.g. { from: 8000, to: 8080 }');
    return { text: `${a}-${b}`, first: a, last: b };
  }
  const n = checkPort(p, where);
  return { text: String(n), first: n, last: n };
}

/** nft refuses overlapping elements in one set: say which two, before nft does. */
function checkDisjoint(items: readonly { text: string; first: number; last: number }[], where: string): void {
  const sorted = [...items].sort((a, b) => a.first - b.first);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.first <= sorted[i - 1]!.last) {
      throw invalid(`${where}: ${sorted[i - 1]!.text} and ${sorted[i]!.text} overlap`, 'list each address, network or port only once (keep the larger one)');
    }
  }
}

/** Rule ids become quoted comments: no character that could end or escape the string. */
function checkId(id: unknown, where: string): string {
  if (typeof id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(id)) {
    throw invalid(`${where}: rule id ${JSON.stringify(id)} is not valid`,
      'use 1-64 letters, digits, ".", ":", "-" or "_" (no spaces or quotes), e.g. web-in');
  }
  return id;
}

function checkLogPrefix(prefix: unknown, where: string): string {
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9 _.:,=/-]{1,64}$/.test(prefix)) {
    throw invalid(`${where}: log prefix ${JSON.stringify(prefix)} is not allowed`,
      'use up to 64 letters, digits, spaces or _ . : , = / - (no quotes, backslashes or newlines), e.g. "kumo drop: "');
  }
  return prefix;
}

/**
 * Checks a whole table and throws INVALID_INPUT naming the first problem and its fix.
 * Also checks what nft would only refuse at load time (unknown chains or sets, NAT outside NAT
 * chains, features the bridge family lacks) so a bad spec never reaches the kernel.
 */
export function validateTable(t: NftTable): void {
  checkFamily(t.family);
  checkName(t.name, 'table');
  const tn = `table ${t.family} ${t.name}`;
  const sets = new Map<string, NftSet>();
  for (const s of t.sets ?? []) {
    checkName(s.name, `set in ${tn}:`);
    if (sets.has(s.name)) throw invalid(`${tn} has two sets named ${s.name}`, 'give every set its own name');
    const where = `set ${s.name} in ${tn}`;
    if (s.type === 'ipv4_addr') checkDisjoint(s.elements.map((e) => checkAddr(e, where)), where);
    else if (s.type === 'inet_service') checkDisjoint(s.elements.map((e) => checkPortItem(e, where)), where);
    else throw invalid(`${where}: type ${JSON.stringify((s as { type: unknown }).type)} is not supported`, 'use ipv4_addr or inet_service');
    sets.set(s.name, s);
  }
  const chains = new Map<string, NftChain>();
  for (const c of t.chains) {
    checkName(c.name, `chain in ${tn}:`);
    if (chains.has(c.name)) throw invalid(`${tn} has two chains named ${c.name}`, 'give every chain its own name');
    chains.set(c.name, c);
    if (c.base) checkBase(t.family, c.base, `chain ${c.name} in ${tn}`);
  }
  const ids = new Set<string>();
  for (const c of t.chains) {
    for (const r of c.rules) {
      const where = `rule ${JSON.stringify(r.id)} in chain ${c.name} of ${tn}`;
      checkId(r.id, where);
      if (ids.has(r.id)) throw invalid(`${where}: the id is used twice in the table`, 'give every rule of a table its own id: counters are reported by id');
      ids.add(r.id);
      checkRule(t.family, c, r, where, sets, chains);
    }
  }
  checkNoJumpLoop(t, chains);
}

function checkBase(family: NftFamily, b: NftBaseChain, where: string): void {
  if (b.type !== 'filter' && b.type !== 'nat') throw invalid(`${where}: chain type ${JSON.stringify(b.type)} is not supported`, 'use filter or nat');
  if (!HOOKS.includes(b.hook)) throw invalid(`${where}: hook ${JSON.stringify(b.hook)} is not supported`, `use one of ${HOOKS.join(', ')}`);
  if (b.type === 'nat' && family === 'bridge') throw invalid(`${where}: the bridge family has no IP NAT`, 'put NAT chains in an ip or inet table');
  if (b.type === 'nat' && b.hook === 'forward') throw invalid(`${where}: NAT chains cannot hook forward`, 'use prerouting for dnat and postrouting for snat/masquerade');
  if (typeof b.priority === 'number') {
    if (!Number.isInteger(b.priority) || b.priority < -2147483648 || b.priority > 2147483647) {
      throw invalid(`${where}: priority ${b.priority} is not a 32-bit whole number`, 'use a whole number such as 0 or -100, or a name such as filter');
    }
  } else if (!PRIORITY_NAMES[family].includes(b.priority)) {
    throw invalid(`${where}: priority ${JSON.stringify(b.priority)} is not a priority name of the ${family} family`,
      `use a number or one of ${PRIORITY_NAMES[family].join(', ')}`);
  }
  if (b.policy !== undefined && b.policy !== 'accept' && b.policy !== 'drop') {
    throw invalid(`${where}: policy ${JSON.stringify(b.policy)} is not supported`, 'use accept or drop');
  }
}

function checkRule(family: NftFamily, c: NftChain, r: NftRule, where: string,
  sets: ReadonlyMap<string, NftSet>, chains: ReadonlyMap<string, NftChain>): void {
  for (const key of ['iif', 'oif'] as const) {
    const m = r[key];
    if (m !== undefined) {
      const list = many(isNot(m) ? m.not : m);
      if (list.length === 0) throw invalid(`${where}: ${key} is an empty list`, `leave ${key} out to match every interface`);
      list.forEach((n) => checkIfname(n, where));
      if (new Set(list).size !== list.length) throw invalid(`${where}: ${key} lists an interface twice`, 'list each interface once');
    }
  }
  for (const key of ['saddr', 'daddr'] as const) {
    const m = r[key];
    if (m === undefined) continue;
    const v = isNot(m) ? m.not : m;
    if (isSetRef(v)) checkSetRef(v, 'ipv4_addr', where, sets);
    else {
      const list = many(v);
      if (list.length === 0) throw invalid(`${where}: ${key} is an empty list`, `leave ${key} out to match every address`);
      checkDisjoint(list.map((a) => checkAddr(a, where)), where);
    }
  }
  if (r.proto !== undefined && !['tcp', 'udp', 'icmp'].includes(r.proto)) {
    throw invalid(`${where}: protocol ${JSON.stringify(r.proto)} is not supported`, 'use tcp, udp or icmp');
  }
  for (const key of ['sport', 'dport'] as const) {
    const m = r[key];
    if (m === undefined) continue;
    if (r.proto !== 'tcp' && r.proto !== 'udp') throw invalid(`${where}: ${key} needs a protocol`, 'add proto: "tcp" or proto: "udp" to the rule');
    const v = isNot(m) ? m.not : m;
    if (isSetRef(v)) checkSetRef(v, 'inet_service', where, sets);
    else {
      const list = many(v);
      if (list.length === 0) throw invalid(`${where}: ${key} is an empty list`, `leave ${key} out to match every port`);
      checkDisjoint(list.map((p) => checkPortItem(p, where)), where);
    }
  }
  if ((r.ct !== undefined || r.ctStatus !== undefined) && family === 'bridge') {
    // Connection tracking in the bridge family needs nf_conntrack_bridge, which kernels often lack.
    throw invalid(`${where}: the bridge family cannot match connection state here`,
      'filter bridge ports statelessly (match the direction by port and address), or use an inet table');
  }
  if (r.ct !== undefined && (!Array.isArray(r.ct) || r.ct.length === 0 || r.ct.some((s) => !CT_STATES.includes(s)) || new Set(r.ct).size !== r.ct.length)) {
    throw invalid(`${where}: ct ${JSON.stringify(r.ct)} is not a list of connection states`, `use some of ${CT_STATES.join(', ')}, each once`);
  }
  if (r.ctStatus !== undefined && !CT_STATUSES.includes(r.ctStatus)) {
    throw invalid(`${where}: ctStatus ${JSON.stringify(r.ctStatus)} is not supported`, `use one of ${CT_STATUSES.join(', ')}`);
  }
  if (r.counter !== undefined && typeof r.counter !== 'boolean') throw invalid(`${where}: counter must be true or false`, 'write counter: true or leave it out');
  if (r.log !== undefined) checkLogPrefix(r.log, where);
  checkAction(family, c, r, where, chains);
}

function checkSetRef(ref: SetRef, type: NftSet['type'], where: string, sets: ReadonlyMap<string, NftSet>): void {
  checkName(ref.set, `${where}: set`);
  const s = sets.get(ref.set);
  if (!s) throw invalid(`${where}: there is no set ${ref.set} in the table`, `add a set named ${ref.set} to the table's sets`);
  if (s.type !== type) throw invalid(`${where}: set ${ref.set} holds ${s.type}, not ${type}`, `use a set of type ${type} here`);
}

function checkAction(family: NftFamily, c: NftChain, r: NftRule, where: string, chains: ReadonlyMap<string, NftChain>): void {
  const a = r.action;
  const natHook = c.base?.type === 'nat' ? c.base.hook : undefined;
  if (typeof a === 'string') {
    if (!['accept', 'drop', 'reject', 'masquerade', 'return'].includes(a)) {
      throw invalid(`${where}: action ${JSON.stringify(a)} is not supported`, 'use accept, drop, reject, masquerade, return, { dnat }, { snat } or { jump }');
    }
    if (a === 'reject' && family === 'bridge') throw invalid(`${where}: bridge chains cannot reject here`, 'use drop');
    if (a === 'masquerade' && natHook !== 'postrouting') throw invalid(`${where}: masquerade works only in a nat chain hooked to postrouting`, 'move the rule to a chain with base { type: "nat", hook: "postrouting" }');
    return;
  }
  if (typeof a !== 'object' || a === null) throw invalid(`${where}: the rule has no action`, 'add action: "accept", "drop", ...');
  if ('dnat' in a) {
    if (natHook !== 'prerouting' && natHook !== 'output') throw invalid(`${where}: dnat works only in a nat chain hooked to prerouting or output`, 'move the rule to a chain with base { type: "nat", hook: "prerouting" }');
    const to = checkAddr(a.dnat, where);
    if (to.first !== to.last) throw invalid(`${where}: dnat needs one address, not the network ${a.dnat}`, 'write the address of the node, e.g. 10.5.2.10');
    if (a.port !== undefined) {
      checkPort(a.port, where);
      if (r.proto !== 'tcp' && r.proto !== 'udp') throw invalid(`${where}: dnat to a port needs a protocol`, 'add proto: "tcp" or proto: "udp" to the rule');
    }
  } else if ('snat' in a) {
    if (natHook !== 'postrouting') throw invalid(`${where}: snat works only in a nat chain hooked to postrouting`, 'move the rule to a chain with base { type: "nat", hook: "postrouting" }');
    const to = checkAddr(a.snat, where);
    if (to.first !== to.last) throw invalid(`${where}: snat needs one address, not the network ${a.snat}`, 'write the outside address of the router, e.g. 10.5.1.1');
  } else if ('jump' in a) {
    checkName(a.jump, `${where}: jump target`);
    const target = chains.get(a.jump);
    if (!target) throw invalid(`${where}: there is no chain ${a.jump} to jump to`, `add a chain named ${a.jump} (without base) to the table`);
    if (target.base) throw invalid(`${where}: chain ${a.jump} hooks into the kernel and cannot be jumped to`, 'jump only to chains without base');
  } else {
    throw invalid(`${where}: action ${JSON.stringify(a)} is not supported`, 'use accept, drop, reject, masquerade, return, { dnat }, { snat } or { jump }');
  }
}

function checkNoJumpLoop(t: NftTable, chains: ReadonlyMap<string, NftChain>): void {
  const targets = (c: NftChain) => c.rules.flatMap((r) => (typeof r.action === 'object' && 'jump' in r.action ? [r.action.jump] : []));
  const done = new Set<string>();
  const visit = (name: string, path: string[]): void => {
    if (path.includes(name)) throw invalid(`table ${t.family} ${t.name}: chains jump in a loop (${[...path.slice(path.indexOf(name)), name].join(' → ')})`, 'remove one of the jumps');
    if (done.has(name)) return;
    for (const next of targets(chains.get(name)!)) visit(next, [...path, name]);
    done.add(name);
  };
  for (const c of t.chains) visit(c.name, []);
}
