import { createHash } from 'node:crypto';
import { type NftFamily, type Negatable, type AddrMatch, type PortMatch, type IfMatch, type NftRule, type NftTable, isNot, isSetRef, many, MARK } from './types.js';
import { checkAddr, checkPortItem, validateTable } from './validate.js';

/** A validated table in nft's text syntax, with kumo's marker comment (a hash of its contents). */

// Rendering (only after validateTable: values are known to be safe here)

const q = (s: string) => `"${s}"`;
const group = (items: readonly string[]) => (items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`);
const neg = <T>(m: Negatable<T>): [string, T] => (isNot(m) ? ['!= ', m.not] : ['', m]);

function renderAddrs(m: Negatable<AddrMatch>): string {
  const [op, v] = neg(m);
  return op + (isSetRef(v) ? `@${v.set}` : group(many(v).map((a) => checkAddr(a, '').text)));
}

function renderPorts(m: Negatable<PortMatch>): string {
  const [op, v] = neg(m);
  return op + (isSetRef(v) ? `@${v.set}` : group(many(v).map((p) => checkPortItem(p, '').text)));
}

function renderIfs(m: Negatable<IfMatch>): string {
  const [op, v] = neg(m);
  return op + group(many(v).map(q));
}

export function renderRule(family: NftFamily, r: NftRule): string {
  const parts: string[] = [];
  if (r.iif !== undefined) parts.push(`iifname ${renderIfs(r.iif)}`);
  if (r.oif !== undefined) parts.push(`oifname ${renderIfs(r.oif)}`);
  if (r.saddr !== undefined) parts.push(`ip saddr ${renderAddrs(r.saddr)}`);
  if (r.daddr !== undefined) parts.push(`ip daddr ${renderAddrs(r.daddr)}`);
  if (r.proto !== undefined) {
    if (r.sport === undefined && r.dport === undefined) parts.push(`meta l4proto ${r.proto}`);
    if (r.sport !== undefined) parts.push(`${r.proto} sport ${renderPorts(r.sport)}`);
    if (r.dport !== undefined) parts.push(`${r.proto} dport ${renderPorts(r.dport)}`);
  }
  if (r.ct?.length) parts.push(`ct state ${group(r.ct)}`);
  if (r.ctStatus !== undefined) parts.push(`ct status ${r.ctStatus}`);
  if (r.counter !== false) parts.push('counter');
  if (r.log !== undefined) parts.push(`log prefix ${q(r.log)}`);
  const a = r.action;
  // An inet table also carries IPv6, so nft needs "ip" to know which address family to translate.
  const af = family === 'inet' ? 'ip ' : '';
  if (typeof a === 'string') parts.push(a);
  else if ('dnat' in a) parts.push(`dnat ${af}to ${checkAddr(a.dnat, '').text}${a.port !== undefined ? `:${a.port}` : ''}`);
  else if ('snat' in a) parts.push(`snat ${af}to ${checkAddr(a.snat, '').text}`);
  else parts.push(`jump ${a.jump}`);
  parts.push(`comment ${q(r.id)}`);
  return parts.join(' ');
}

function renderBody(t: NftTable): string[] {
  const lines: string[] = [];
  for (const s of t.sets ?? []) {
    lines.push(`\tset ${s.name} {`);
    lines.push(`\t\ttype ${s.type}`);
    // Interval flag: networks and port ranges need it; nft accepts plain elements in such sets too.
    lines.push('\t\tflags interval');
    const els = s.type === 'ipv4_addr' ? s.elements.map((e) => checkAddr(e, '').text) : s.elements.map((e) => checkPortItem(e, '').text);
    if (els.length) lines.push(`\t\telements = { ${els.join(', ')} }`);
    lines.push('\t}');
  }
  for (const c of t.chains) {
    lines.push(`\tchain ${c.name} {`);
    if (c.base) {
      lines.push(`\t\ttype ${c.base.type} hook ${c.base.hook} priority ${c.base.priority}; policy ${c.base.policy ?? 'accept'};`);
    }
    for (const r of c.rules) lines.push(`\t\t${renderRule(t.family, r)}`);
    lines.push('\t}');
  }
  return lines;
}

/** The marker comment: kumo's, with a hash of the contents so an unchanged table can be kept. */
export function tableMark(t: NftTable): string {
  validateTable(t);
  const digest = createHash('sha256').update(`${t.family} ${t.name}\n${renderBody(t).join('\n')}`).digest('hex');
  return `${MARK}${digest.slice(0, 24)}`;
}

/** `table FAMILY NAME { ... }` in nft's syntax; validates first. */
export function renderTable(t: NftTable): string {
  const mark = tableMark(t);
  return [`table ${t.family} ${t.name} {`, `\tcomment ${q(mark)}`, ...renderBody(t), '}', ''].join('\n');
}

/**
 * One nft transaction that replaces exactly these tables: `add table` makes the `delete` valid
 * when the table is new, and the new contents follow. nft applies the whole text or nothing.
 */
export function renderReplace(tables: readonly NftTable[]): string {
  return tables.map((t) => `add table ${t.family} ${t.name}\ndelete table ${t.family} ${t.name}\n${renderTable(t)}`).join('');
}

export function renderDelete(tables: readonly { family: NftFamily; name: string }[]): string {
  return tables.map((t) => `add table ${t.family} ${t.name}\ndelete table ${t.family} ${t.name}\n`).join('');
}
