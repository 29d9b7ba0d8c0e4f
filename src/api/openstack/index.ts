import type { FastifyInstance } from 'fastify';
import { identityRoutes } from './identity.js';
import { computeRoutes } from './compute.js';
import { OPENSTACK_PATHS, type OpenStackDeps } from './common.js';

/**
 * The OpenStack-compatible API (Keystone, Nova, Glance, Neutron, Cinder) on `kumo serve`'s own
 * address, each service under its path (common.ts OPENSTACK_PATHS), on kumo's own services and
 * projects: a thin translation, no second state. docs/openstack.md says what each serves.
 */
export async function registerOpenStack(app: FastifyInstance, deps: OpenStackDeps): Promise<void> {
  await app.register(identityRoutes, { ...deps, prefix: OPENSTACK_PATHS.identity });
  await app.register(computeRoutes, { ...deps, prefix: OPENSTACK_PATHS.compute });
}
