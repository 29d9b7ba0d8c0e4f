import {
  decodeDomain, decodeTypedParam, DOMAIN_STATE_NAMES, DOMAIN_STATS_STATE, type Domain, encodeDomain, Proc,
  REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX, REMOTE_DOMAIN_LIST_MAX,
} from './protocol.js';
import type { XdrReader, XdrWriter } from './xdr.js';

/** What the typed calls need: a connection (connection.ts) or anything that answers like one. */
export interface RpcCaller {
  call(proc: Proc, args?: (w: XdrWriter) => void): Promise<XdrReader>;
}

export type DomainState = (typeof DOMAIN_STATE_NAMES)[number];

const stateName = (n: number): DomainState => DOMAIN_STATE_NAMES[n] ?? 'no state';

/** Every domain with its state, in one round trip (what `virsh domstats --state` asks). */
export async function listAllWithState(c: RpcCaller): Promise<{ dom: Domain; state: DomainState }[]> {
  const r = await c.call(Proc.CONNECT_GET_ALL_DOMAIN_STATS, (w) => w.array([], encodeDomain).uint(DOMAIN_STATS_STATE).uint(0));
  return r.array((x) => {
    const dom = decodeDomain(x);
    const params = new Map(x.array(decodeTypedParam, REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX));
    return { dom, state: stateName(Number(params.get('state.state') ?? 0)) };
  }, REMOTE_DOMAIN_LIST_MAX);
}

/** Every domain (name, UUID, id; id -1 when not running), without states. */
export async function listAll(c: RpcCaller): Promise<Domain[]> {
  // flags 0: active and inactive alike
  const r = await c.call(Proc.CONNECT_LIST_ALL_DOMAINS, (w) => w.int(1).uint(0));
  return r.array(decodeDomain, REMOTE_DOMAIN_LIST_MAX);
}

export async function lookupByName(c: RpcCaller, name: string): Promise<Domain> {
  return decodeDomain(await c.call(Proc.DOMAIN_LOOKUP_BY_NAME, (w) => w.string(name)));
}

/** remote_domain_lookup_by_uuid_args: the 16 bytes of the UUID. */
export async function lookupByUuid(c: RpcCaller, uuid: string): Promise<Domain> {
  return decodeDomain(await c.call(Proc.DOMAIN_LOOKUP_BY_UUID, (w) => w.fixedOpaque(Buffer.from(uuid.replace(/-/g, ''), 'hex'))));
}

export async function domainState(c: RpcCaller, dom: Domain): Promise<DomainState> {
  const r = await c.call(Proc.DOMAIN_GET_STATE, (w) => { encodeDomain(w, dom); w.uint(0); });
  return stateName(r.int());
}

export async function domainXml(c: RpcCaller, dom: Domain, flags = 0): Promise<string> {
  return (await c.call(Proc.DOMAIN_GET_XML_DESC, (w) => { encodeDomain(w, dom); w.uint(flags); })).string();
}

export async function defineDomain(c: RpcCaller, xml: string): Promise<Domain> {
  return decodeDomain(await c.call(Proc.DOMAIN_DEFINE_XML, (w) => w.string(xml)));
}

export async function undefineDomain(c: RpcCaller, dom: Domain): Promise<void> {
  await c.call(Proc.DOMAIN_UNDEFINE_FLAGS, (w) => { encodeDomain(w, dom); w.uint(0); });
}
