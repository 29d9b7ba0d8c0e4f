import { XMLParser } from 'fast-xml-parser';
import type { Reach } from './reach.js';

/**
 * What of a libvirt network XML reaches past the network itself into the machine: libvirt's
 * passthrough namespaces (`<dnsmasq:options>` hands dnsmasq any option, e.g. dhcp-script= runs a
 * program as root), a TFTP root (dnsmasq serves that server folder to every guest), hostdev
 * forwarding (hands the host's PCI devices to guests), and a DOCTYPE (entities could carry any of
 * these past a check). From the cloud all are refused; root on the machine may (virsh net-define
 * does the same for root). Pure: the network service asks before libvirt sees the document.
 */

const parser = new XMLParser({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: '', processEntities: false, parseTagValue: false, parseAttributeValue: false });

type Token = Record<string, unknown>;

/** The first thing of `xml` the cloud may not ask for, as a sentence; undefined when none. */
export function networkXmlPassthrough(xml: string, reach: Reach): string | undefined {
  if (reach === 'machine') return undefined;
  if (/<!(DOCTYPE|ENTITY)/i.test(xml)) return 'it has a DOCTYPE or an entity declaration';
  let tokens: Token[];
  try {
    tokens = parser.parse(xml) as Token[];
  } catch {
    return undefined; // not well-formed: libvirt's schema check says so, naming the line
  }
  return walk(tokens, true);
}

function walk(tokens: Token[], top: boolean): string | undefined {
  for (const token of tokens) {
    for (const [key, value] of Object.entries(token)) {
      if (key === ':@' || key === '#text') continue;
      if (key.startsWith('?')) {
        if (key === '?xml' && top) continue;
        return `it has the processing instruction <${key}>`;
      }
      if (key.includes(':')) return `it has the element <${key}> of another namespace (libvirt passes such elements to dnsmasq or QEMU as they are)`;
      const attrs = (token[':@'] ?? {}) as Record<string, unknown>;
      for (const a of Object.keys(attrs)) {
        if (a === 'xmlns' || a.includes(':')) return `the element <${key}> has the attribute ${a} (a namespace: libvirt's network schema needs none)`;
      }
      if (key === 'tftp') return 'it has <tftp>, which serves a folder of the server to the guests';
      if (key === 'forward' && attrs['mode'] === 'hostdev') return 'it has <forward mode="hostdev">, which hands the host\'s PCI devices to guests';
      if (Array.isArray(value)) {
        const inner = walk(value as Token[], false);
        if (inner) return inner;
      }
    }
  }
  return undefined;
}
