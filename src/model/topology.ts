import type { Topology } from './lab.js';

/**
 * Questions about a topology (a lab's or a datacenter file's hosts': segments and nodes with
 * roles and links), answered in one place for the lab, the datacenter file and its kinds.
 */

/** The hypervisor nodes, with their specs. */
export function hypervisorsOf<T extends Topology>(topo: T): [string, T['nodes'][string]][] {
  return Object.entries(topo.nodes).filter(([, n]) => n.roles.includes('hypervisor')) as [string, T['nodes'][string]][];
}

/**
 * The instance segments every hypervisor links: where an instance can go whatever its host,
 * so instances attach to them when nothing else is said (and the wizard's "Bridge" is the first).
 */
export function sharedInstanceSegments(topo: Topology): string[] {
  const hvs = hypervisorsOf(topo);
  return Object.keys(topo.segments).filter((seg) => topo.segments[seg]!.instances && hvs.every(([, n]) => seg in n.links));
}

/** Each hypervisor with each instance segment it links: [node, segment]. */
export function hypervisorSegments(topo: Topology): [string, string][] {
  return hypervisorsOf(topo).flatMap(([node, n]) =>
    Object.keys(n.links).filter((seg) => topo.segments[seg]?.instances).map((seg): [string, string] => [node, seg]));
}
