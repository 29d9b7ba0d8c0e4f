/**
 * What a node does for kumo, declared once: the hosts table, the API, a datacenter file's
 * `hosts:` and the lab all take their role lists from here.
 */
export const HOST_ROLES = ['hypervisor', 'storage', 'lb', 'edge'] as const;
export type HostRole = (typeof HOST_ROLES)[number];

/** A lab node may also stand for the outside world (the course's "internet"): never a host kumo registers. */
export const LAB_ROLES = [...HOST_ROLES, 'outside'] as const;
export type LabRole = (typeof LAB_ROLES)[number];

export const isHostRole = (role: string): role is HostRole => (HOST_ROLES as readonly string[]).includes(role);
