import type { Kind } from './kind.js';
import { labKind } from './kinds/lab.js';
import { hostKind } from './kinds/host.js';
import { networkKind } from './kinds/network.js';
import { dhcpKind } from './kinds/dhcp.js';
import { imageKind } from './kinds/image.js';
import { flavorKind } from './kinds/flavor.js';
import { shareKind } from './kinds/share.js';
import { instanceKind } from './kinds/instance.js';
import { loadBalancerKind } from './kinds/loadbalancer.js';
import { firewallKind } from './kinds/firewall.js';
import { edgeKind } from './kinds/edge.js';
import { monitoringKind } from './kinds/monitoring.js';

/**
 * Every kind of the datacenter file, in the one order apply makes them: what a kind needs
 * comes before it (machines, then networks and DHCP, images and flavors, shares, instances
 * — which must answer before — load balancers, access rules once everything they let through
 * exists, the edge that forwards to the load balancers, and the collector that reads it all).
 * Deletions and destroy go in the reverse order. A new kind is a file under kinds/ and a line here.
 */
export const KINDS: readonly Kind[] = [
  labKind,
  hostKind,
  networkKind,
  dhcpKind,
  imageKind,
  flavorKind,
  shareKind,
  instanceKind,
  loadBalancerKind,
  firewallKind,
  edgeKind,
  monitoringKind,
];
