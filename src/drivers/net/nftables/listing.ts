import { type NftTable, type RuleCounter } from './types.js';
import { tableMark } from './render.js';

/** nft's own listing of a table read back: compared with the wanted table, and its rule counters. */

// Reading nft's own listing

/** A chain as listed: its hook line's type, hook and policy (if a base chain), and its rules' ids in order. */
export interface ListedChain {
  base?: { type: string; hook: string; policy: string };
  ids: (string | undefined)[];
}

/** What `nft -s list table` shows of a table: its comment, its chains and its sets' sizes. */
export interface ListedTable {
  comment?: string;
  chains: Map<string, ListedChain>;
  setSizes: Map<string, number>;
}

export function parseListing(text: string): ListedTable {
  const out: ListedTable = { chains: new Map(), setSizes: new Map() };
  let chain: ListedChain | undefined;
  let set: string | undefined;
  let elements: string | undefined;
  for (const line of text.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^\tcomment "(.*)"$/.exec(line))) out.comment = m[1];
    else if ((m = /^\tchain (\S+) \{$/.exec(line))) out.chains.set(m[1]!, (chain = { ids: [] }));
    else if ((m = /^\tset (\S+) \{$/.exec(line))) { set = m[1]; out.setSizes.set(set!, 0); }
    else if (line === '\t}') { chain = undefined; set = undefined; }
    else if (set !== undefined && (elements !== undefined || /^\t\telements = \{/.test(line))) {
      elements = (elements ?? '') + line;
      if (line.trimEnd().endsWith('}')) {
        const inner = elements.slice(elements.indexOf('{') + 1, elements.lastIndexOf('}')).trim();
        out.setSizes.set(set, inner ? inner.split(',').length : 0);
        elements = undefined;
      }
    } else if (chain && (m = /^\t\ttype (\S+) hook (\S+) .*; policy (\S+);/.exec(line))) {
      chain.base = { type: m[1]!, hook: m[2]!, policy: m[3]! };
    } else if (chain && /^\t\t\S/.test(line)) {
      chain.ids.push(/ comment "([^"]*)"$/.exec(line)?.[1]);
    }
  }
  return out;
}

/**
 * True when the live table still is what `t` renders to: kumo's mark with this spec's hash, and no
 * hand edit that shows in the listing (a chain's policy, rules added, removed or reordered, set
 * elements added or removed). A rule edited in place under the same comment is not noticed.
 */
export function listingMatches(t: NftTable, live: ListedTable): boolean {
  if (live.comment !== tableMark(t)) return false;
  if (live.chains.size !== t.chains.length || live.setSizes.size !== (t.sets?.length ?? 0)) return false;
  for (const c of t.chains) {
    const l = live.chains.get(c.name);
    if (!l || l.ids.length !== c.rules.length || c.rules.some((r, i) => l.ids[i] !== r.id)) return false;
    const want = c.base && { type: c.base.type, hook: c.base.hook, policy: c.base.policy ?? 'accept' };
    if (JSON.stringify(l.base) !== JSON.stringify(want)) return false;
  }
  return (t.sets ?? []).every((s) => live.setSizes.get(s.name) === s.elements.length);
}

/** Rule counters from `nft -j list table` output. */
export function parseCounters(json: string): RuleCounter[] {
  // nft's JSON schema: a list of one-key objects; only rules and their counter statements matter here.
  const doc = JSON.parse(json) as { nftables?: Record<string, unknown>[] };
  const out: RuleCounter[] = [];
  for (const item of doc.nftables ?? []) {
    const rule = item.rule as { chain?: string; comment?: string; expr?: Record<string, unknown>[] } | undefined;
    if (!rule?.comment || !rule.chain) continue;
    const counter = rule.expr?.find((e) => 'counter' in e)?.counter as { packets?: number; bytes?: number } | undefined;
    out.push({ id: rule.comment, chain: rule.chain,
      ...(counter ? { packets: counter.packets ?? 0, bytes: counter.bytes ?? 0 } : {}) });
  }
  return out;
}
