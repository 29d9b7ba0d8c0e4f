import { invalid } from './errors.js';

/**
 * Value checks, one home for each: IPv4 addresses and CIDRs (with the subnet arithmetic kumo
 * needs for gateways and DHCP ranges), names and ports. The readers here never throw; they say
 * what is wrong, so every caller (the CLI's parsers, the schemas, the config renderers) words
 * its own message while all of them accept and refuse exactly the same texts.
 */

// ------------------------------------------------------------------------------------ IPv4

/** Why a text is not an IPv4 address. */
export type Ipv4Fault = 'syntax' | 'leading-zero' | 'octet-range';

export type Ipv4Read = { ok: true; value: number } | { ok: false; fault: Ipv4Fault };

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * THE IPv4 parser: four decimal octets 0-255 as a 32-bit number. No leading zeros: "010" is
 * 8 to inet_aton and 10 to other tools. No spaces either; callers that allow them trim first.
 */
export function readIpv4(text: string): Ipv4Read {
  const m = DOTTED.exec(text);
  if (!m) return { ok: false, fault: 'syntax' };
  const octets = m.slice(1, 5) as string[];
  if (octets.some((o) => o.length > 1 && o.startsWith('0'))) return { ok: false, fault: 'leading-zero' };
  const [a, b, c, d] = octets.map(Number) as [number, number, number, number];
  if ([a, b, c, d].some((p) => p > 255)) return { ok: false, fault: 'octet-range' };
  return { ok: true, value: ((a << 24) | (b << 16) | (c << 8) | d) >>> 0 };
}

/** Why a text is not a CIDR: its shape, its address, its prefix (above /32) or host bits. */
export type CidrFault = 'shape' | Ipv4Fault | 'prefix-range' | 'host-bits';

/** What a CIDR's reader saw: the address part and the prefix part as written (none: a bare address), and the prefix. */
interface CidrParts {
  address: string;
  prefixText: string | undefined;
  prefix: number;
}

export type CidrRead =
  | { ok: true; network: number; prefix: number }
  | { ok: false; fault: 'shape' }
  | ({ ok: false; fault: Ipv4Fault | 'prefix-range' } & CidrParts)
  /** `network`: the network the address lies in, for a "did you mean". */
  | ({ ok: false; fault: 'host-bits'; network: number } & CidrParts);

const CIDR_SHAPE = /^([\d.]+)(?:\/(\d{1,2}))?$/;

/**
 * THE CIDR parser: ADDRESS/PREFIX with the prefix at most /32 and no host bits set. With
 * `bare`, an address alone reads as its /32. Faults come in this order: shape, address, prefix,
 * host bits; a caller with a narrower prefix range checks `prefix` itself (it is there on every
 * fault after the shape).
 */
export function readCidr(text: string, opts: { bare?: boolean } = {}): CidrRead {
  const m = CIDR_SHAPE.exec(text);
  if (!m || (m[2] === undefined && !opts.bare)) return { ok: false, fault: 'shape' };
  const parts: CidrParts = { address: m[1]!, prefixText: m[2], prefix: m[2] === undefined ? 32 : Number(m[2]) };
  const ip = readIpv4(parts.address);
  if (!ip.ok) return { ok: false, fault: ip.fault, ...parts };
  if (parts.prefix > 32) return { ok: false, fault: 'prefix-range', ...parts };
  const network = (ip.value & mask(parts.prefix)) >>> 0;
  if (network !== ip.value) return { ok: false, fault: 'host-bits', network, ...parts };
  return { ok: true, network, prefix: parts.prefix };
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** An address as kumo's own inputs take it (spaces around it allowed); `what` names it in the message. */
export function parseIp(text: string, what = 'address'): number {
  const r = readIpv4(text.trim());
  if (!r.ok) throw invalid(`${what} "${text}" is not an IPv4 address`, 'write it like 192.168.222.1');
  return r.value;
}

export const isIp = (text: string): boolean => readIpv4(text.trim()).ok;

// ---------------------------------------------------------------------------------- subnets

export interface Subnet {
  network: number;
  prefix: number;
}

/** The prefixes a subnet kumo makes may have: /31 and /32 leave no room for hosts and a gateway. */
export const SUBNET_PREFIX = { min: 8, max: 30 } as const;

const mask = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

/** A subnet kumo makes (a network, a lab or hosts segment): /8 to /30, no host bits. */
export function parseCidr(text: string): Subnet {
  const r = readCidr(text.trim());
  if (!r.ok && r.fault === 'shape') throw invalid(`"${text}" is not a CIDR`, 'write it like 192.168.222.0/24');
  // The prefix is judged before the address, as kumo always did: an out-of-range prefix is named first.
  const prefix = r.prefix;
  if (prefix < SUBNET_PREFIX.min || prefix > SUBNET_PREFIX.max) {
    throw invalid(`prefix /${prefix} in ${text} is out of range`, `use a prefix from /${SUBNET_PREFIX.min} to /${SUBNET_PREFIX.max}, e.g. /24`);
  }
  if (r.ok) return { network: r.network, prefix };
  if (r.fault === 'host-bits') throw invalid(`${text} has host bits set`, `did you mean ${formatIp(r.network)}/${prefix}?`);
  throw invalid(`network "${r.address}" is not an IPv4 address`, 'write it like 192.168.222.1');
}

export const isCidr = (text: string): boolean => {
  const r = readCidr(text.trim());
  return r.ok && r.prefix >= SUBNET_PREFIX.min && r.prefix <= SUBNET_PREFIX.max;
};

// The schemas built on these checks (addresses, CIDRs, ports) are in check-schemas.ts: a
// command that only checks an address does not load zod.

export const formatCidr = (s: Subnet) => `${formatIp(s.network)}/${s.prefix}`;
export const broadcast = (s: Subnet) => (s.network | (~mask(s.prefix) >>> 0)) >>> 0;
export const contains = (s: Subnet, ip: number) => ((ip & mask(s.prefix)) >>> 0) === s.network;
export const overlaps = (a: Subnet, b: Subnet) => contains(a, b.network) || contains(b, a.network);

/** The subnet an address with a prefix (or netmask) lies in: 192.168.1.7/24 → 192.168.1.0/24. */
export function subnetOf(address: string, prefix: number): Subnet {
  return { network: (parseIp(address) & mask(prefix)) >>> 0, prefix };
}

/**
 * Resolves an address given in full or as a suffix of the subnet (".1" → 192.168.222.1),
 * as `kumo network create --gateway .1` accepts.
 */
export function resolveInSubnet(s: Subnet, text: string, what: string): number {
  const t = text.trim();
  if (/^\.\d{1,3}(\.\d{1,3}){0,2}$/.test(t)) {
    const tail = t.slice(1).split('.').map(Number);
    const base = formatIp(s.network).split('.').slice(0, 4 - tail.length);
    return parseIp([...base, ...tail].join('.'), what);
  }
  return parseIp(t, what);
}

// ------------------------------------------------------------------------------------ names

/** A naming rule: what names match, and the words that tell a user what it allows. */
export interface NameRule {
  readonly pattern: RegExp;
  readonly allows: string;
}

/**
 * kumo's resource names become libvirt domain names, hostnames and file names, so they follow
 * RFC 1123 host labels. That rules out `../`, spaces, shell and XML metacharacters by construction.
 */
export const HOST_LABEL: NameRule = {
  pattern: /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/,
  allows: 'letters, digits and inner hyphens, 1-63 characters (like a hostname)',
};

/** Names that never become hostnames (images, snapshots, as in `centos-7.8`) may carry dots and underscores too, never "..". */
export const FILE_LABEL: NameRule = {
  pattern: /^(?!.*\.\.)[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/,
  allows: 'letters, digits, and inner ".", "_" or "-", 1-63 characters',
};

/** Names a daemon's config file holds as bare words (HAProxy, nginx: backends, users). */
export const CONFIG_WORD: NameRule = {
  pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/,
  allows: 'letters, digits, "-", "_" and "." (at most 63, starting with a letter or digit)',
};

/** Table, chain and set names nft parses as identifiers (its renderer also refuses nft's keywords). */
export const NFT_IDENTIFIER: NameRule = {
  pattern: /^[a-z][a-z0-9_-]{0,63}$/,
  allows: '1-64 lower-case letters, digits, "-" or "_", starting with a letter (no spaces or quotes)',
};

export const isName = (value: unknown, rule: NameRule): value is string => typeof value === 'string' && rule.pattern.test(value);

const ALL_DIGITS = /^\d+$/;

/**
 * Why a name could be mistaken for another object's (undefined: it cannot). virsh looks a domain
 * up by ID first, then by UUID, then by name (networks: UUID, then name), so a resource named
 * "42" or like a UUID could reach a domain or network kumo never made. libvirt's UUID parser
 * skips hyphens wherever they stand: 32 hex digits plus any hyphens count as a UUID.
 */
export function mistakableName(name: string): string | undefined {
  if (ALL_DIGITS.test(name)) return 'it is all digits, which libvirt reads as a domain ID (no kumo name may be mistaken for one)';
  if (/^[0-9a-f-]+$/i.test(name) && name.replace(/-/g, '').length === 32) {
    return 'it has the shape of a UUID, which libvirt reads as a domain or network UUID (no kumo name may be mistaken for one)';
  }
  return undefined;
}

/** A name for a config file or ruleset: `WHAT "value" is not a valid name`, and what the rule allows. */
export function checkNameBy(rule: NameRule, value: unknown, what: string, example?: string): string {
  if (!isName(value, rule)) throw invalid(`${what} ${JSON.stringify(value)} is not a valid name`, `use ${rule.allows}${example ? `, e.g. ${example}` : ''}`);
  return value;
}

// ------------------------------------------------------------------------------------ ports

export const isPort = (value: unknown): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535;


// --------------------------------------------------------------------------------- ssh keys

/** An OpenSSH public key line, as a .pub file holds it: its type, the base64 key, an optional comment. */
const SSH_PUBLIC_KEY = /^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$/;

/** Whether a text (spaces around it allowed: kumo trims them) is an ssh public key. */
export const isSshPublicKey = (text: string): boolean => SSH_PUBLIC_KEY.test(text.trim());

// -------------------------------------------------------------------------------- mount paths

/** The characters a mount path may have (a schema shows it; mountPathFault judges the rest). */
export const MOUNT_PATH_PATTERN = /^\/[A-Za-z0-9._/-]*$/;

/** Folders a mount over would break the guest: its system, its virtual file systems, root's home. */
const SYSTEM_FOLDERS = ['/', '/bin', '/boot', '/dev', '/etc', '/lib', '/lib64', '/proc', '/root', '/run', '/sbin', '/sys', '/usr', '/var'];
/** Kernel file systems: nothing may be mounted anywhere under them. */
const VIRTUAL_FOLDERS = ['/proc', '/sys', '/dev'];

/**
 * What is wrong with a folder a guest mounts a share at (undefined: nothing): it must be an
 * absolute path written the one normal way (no "..", ".", "//" or trailing "/"), and not a
 * system folder (the mount would hide the guest's own files there).
 */
export function mountPathFault(path: string): string | undefined {
  if (!MOUNT_PATH_PATTERN.test(path)) return 'an absolute path of letters, digits, ".", "_", "-" and "/"';
  const segments = path.split('/').slice(1);
  if (path !== '/' && segments.some((s) => s === '' || s === '.' || s === '..')) {
    return `"${path}" is not a normal path: no "..", "." or empty segments, no "/" at the end`;
  }
  if (SYSTEM_FOLDERS.includes(path) || VIRTUAL_FOLDERS.some((v) => path.startsWith(`${v}/`))) {
    return `"${path}" is a system folder of the guest: mounting there hides its own files; use a folder of its own such as /var/www/shared`;
  }
  return undefined;
}
