/** nftables as typed data: what kumo's renderer and driver take (./nftables.ts has the whole story). */


export type NftFamily = 'inet' | 'ip' | 'bridge';
export type NftHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
export type NftChainType = 'filter' | 'nat';
/** nft's named priorities: their numbers depend on the family (bridge filter is -200). */
export type NftNamedPriority = 'raw' | 'mangle' | 'dstnat' | 'filter' | 'security' | 'srcnat' | 'out';
export type NftPolicy = 'accept' | 'drop';
export type CtState = 'new' | 'established' | 'related' | 'invalid' | 'untracked';
export type CtStatus = 'dnat' | 'snat';
export type L4Proto = 'tcp' | 'udp' | 'icmp';

export type OneOrMany<T> = T | readonly T[];
/** A match on a value, or on everything but it (`{ not: ... }` renders `!=`). */
export type Negatable<T> = T | { readonly not: T };
/** A reference to a named set of the same table. */
export interface SetRef { readonly set: string }
/** An IPv4 address (10.5.1.7) or network (10.5.1.0/24). */
export type AddrMatch = OneOrMany<string> | SetRef;
/** A port, or an inclusive range of ports. */
export type Port = number | { readonly from: number; readonly to: number };
export type PortMatch = OneOrMany<Port> | SetRef;
/** Interface names; a trailing `*` matches every name with that prefix (vnet*). */
export type IfMatch = OneOrMany<string>;

export type NftAction =
  | 'accept' | 'drop' | 'reject' | 'masquerade' | 'return'
  | { readonly dnat: string; readonly port?: number }
  | { readonly snat: string }
  | { readonly jump: string };

export interface NftRule {
  /** Stable id, unique in its table: carried as the rule's comment so counters can be read back. */
  readonly id: string;
  readonly iif?: Negatable<IfMatch>;
  readonly oif?: Negatable<IfMatch>;
  readonly saddr?: Negatable<AddrMatch>;
  readonly daddr?: Negatable<AddrMatch>;
  /** Needed with ports; `icmp` matches the protocol only. */
  readonly proto?: L4Proto;
  readonly sport?: Negatable<PortMatch>;
  readonly dport?: Negatable<PortMatch>;
  /** Any of these connection states (one state per packet, so a set is right here). */
  readonly ct?: readonly CtState[];
  /** The connection was translated so (a bit test: one value, since a set would compare all bits). */
  readonly ctStatus?: CtStatus;
  /** Count packets and bytes (default true: counters are what `counters()` reports). */
  readonly counter?: boolean;
  /** Log matching packets to the kernel log with this prefix. */
  readonly log?: string;
  readonly action: NftAction;
}

export interface NftBaseChain {
  readonly type: NftChainType;
  readonly hook: NftHook;
  readonly priority: number | NftNamedPriority;
  readonly policy?: NftPolicy;
}

export interface NftChain {
  readonly name: string;
  /** Where the chain hooks into the kernel; without it the chain is a jump target. */
  readonly base?: NftBaseChain;
  readonly rules: readonly NftRule[];
}

export type NftSet =
  | { readonly name: string; readonly type: 'ipv4_addr'; readonly elements: readonly string[] }
  | { readonly name: string; readonly type: 'inet_service'; readonly elements: readonly Port[] };

export interface NftTable {
  readonly family: NftFamily;
  readonly name: string;
  readonly sets?: readonly NftSet[];
  readonly chains: readonly NftChain[];
}

export interface RuleCounter {
  id: string;
  chain: string;
  /** Undefined for a rule rendered without a counter. */
  packets?: number;
  bytes?: number;
}

export interface ApplyOutcome {
  family: NftFamily;
  name: string;
  /** false: the live table already was this spec (kept as it is, counters included). */
  changed: boolean;
}

/** The marker a kumo table carries as its comment, followed by the hash of its contents. */
export const MARK = 'kumo ';

export const isNot = <T>(m: Negatable<T>): m is { readonly not: T } => typeof m === 'object' && m !== null && 'not' in m;
export const isSetRef = (m: unknown): m is SetRef => typeof m === 'object' && m !== null && 'set' in m;
export const many = <T>(v: OneOrMany<T>): readonly T[] => (Array.isArray(v) ? (v as readonly T[]) : [v as T]);

