import type { FastifyInstance } from 'fastify';
import { identityRoutes } from './identity.js';
import { computeRoutes } from './compute.js';
import { imageRoutes } from './image.js';
import { networkRoutes } from './network.js';
import { volumeRoutes } from './volume.js';
import { OPENSTACK_PATHS, type OpenStackDeps } from './common.js';

/**
 * The OpenStack-compatible API (Keystone, Nova, Glance, Neutron, Cinder) on `kumo serve`'s own
 * address, each service under its path (common.ts OPENSTACK_PATHS), on kumo's own services and
 * projects: a thin translation, no second state. docs/openstack.md says what each serves.
 */
export async function registerOpenStack(app: FastifyInstance, deps: OpenStackDeps): Promise<void> {
  await app.register(identityRoutes, { ...deps, prefix: OPENSTACK_PATHS.identity });
  await app.register(computeRoutes, { ...deps, prefix: OPENSTACK_PATHS.compute });
  await app.register(imageRoutes, { ...deps, prefix: OPENSTACK_PATHS.image });
  await app.register(networkRoutes, { ...deps, prefix: OPENSTACK_PATHS.network });
  await app.register(volumeRoutes, { ...deps, prefix: OPENSTACK_PATHS.volume });
}
