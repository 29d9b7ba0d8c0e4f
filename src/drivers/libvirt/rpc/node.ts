import { Proc } from './protocol.js';
import type { RpcCaller } from './domains.js';
import type { XdrReader } from './xdr.js';

/** REMOTE_NETWORK_LIST_MAX in libvirt 9's remote_protocol.x. */
const NETWORK_LIST_MAX = 16384;

/** virConnectListAllNetworks' flags (libvirt-network.h). */
export const NetworkListFlags = { INACTIVE: 1, ACTIVE: 2, PERSISTENT: 4, TRANSIENT: 8, AUTOSTART: 16, NO_AUTOSTART: 32 } as const;

/**
 * remote_node_get_info_ret: `char model[32]` (XDR carries each char as a 4-byte int), the memory
 * in KiB as an unsigned hyper, then cpus, mhz, nodes, sockets, cores, threads.
 */
export async function nodeGetInfo(c: RpcCaller): Promise<{ model: string; memoryKiB: bigint; cpus: number; mhz: number }> {
  const r = await c.call(Proc.NODE_GET_INFO);
  const chars: number[] = [];
  for (let i = 0; i < 32; i++) chars.push(r.int() & 0xff);
  const end = chars.indexOf(0);
  const model = Buffer.from(end < 0 ? chars : chars.slice(0, end)).toString('latin1');
  return { model, memoryKiB: r.uhyper(), cpus: r.int(), mhz: r.int() };
}

/** remote_nonnull_network: name and UUID (the UUID is not needed here and is skipped). */
const networkName = (r: XdrReader): string => {
  const name = r.string();
  r.fixedOpaque(16);
  return name;
};

/** The names of the networks that match `flags` (0: all), in one round trip. */
export async function listAllNetworks(c: RpcCaller, flags = 0): Promise<string[]> {
  // need_results 1, then the flags; the reply's trailing count is not needed
  const r = await c.call(Proc.CONNECT_LIST_ALL_NETWORKS, (w) => w.int(1).uint(flags));
  return r.array(networkName, NETWORK_LIST_MAX);
}
