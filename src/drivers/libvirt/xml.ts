import { XMLBuilder, XMLParser } from 'fast-xml-parser';

/**
 * libvirt XML goes through a real XML library both ways: the builder escapes every value,
 * so user text can never change the document's structure.
 * Attributes are keys prefixed with '@_', text is '#text'.
 */
const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  format: true,
  suppressEmptyNode: true,
});

export function buildXml(doc: object): string {
  return builder.build(doc) as string;
}

/** Elements that may repeat are always parsed as arrays, so readers never guess. */
const REPEATED = new Set(['disk', 'interface', 'ip', 'range', 'host', 'graphics', 'listen', 'serial', 'console',
  'controller', 'snapshot']);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseAttributeValue: false,
  parseTagValue: false,
  isArray: (name) => REPEATED.has(name),
});

/** A parsed XML node: attributes, text and child elements all under string keys. */
export type XmlNode = { [key: string]: XmlValue };
export type XmlValue = string | XmlNode | XmlNode[] | undefined;

export function parseXml(xml: string): XmlNode {
  return parser.parse(xml) as XmlNode;
}

export function child(node: XmlValue, key: string): XmlNode | undefined {
  if (!node || typeof node !== 'object' || Array.isArray(node)) return undefined;
  const v = node[key];
  if (Array.isArray(v)) return v[0];
  return typeof v === 'object' ? v : v === '' ? {} : undefined;
}

export function children(node: XmlValue, key: string): XmlNode[] {
  if (!node || typeof node !== 'object' || Array.isArray(node)) return [];
  const v = node[key];
  if (Array.isArray(v)) return v;
  if (v && typeof v === 'object') return [v];
  return v === '' ? [{}] : [];
}

export function attr(node: XmlNode | undefined, name: string): string | undefined {
  const v = node?.[`@_${name}`];
  return typeof v === 'string' ? v : undefined;
}

export function text(node: XmlValue): string | undefined {
  if (typeof node === 'string') return node;
  if (node && !Array.isArray(node) && typeof node['#text'] === 'string') return node['#text'];
  return undefined;
}
