/** Where each OpenStack service answers, under `kumo serve`'s own address. */
export const OPENSTACK_PATHS = {
  identity: '/identity',
  compute: '/compute',
  image: '/image',
  network: '/networking',
  volume: '/volume',
} as const;

/** Is this URL one of the OpenStack services' (the audit log records their writes too)? */
export const isOpenStackUrl = (url: string): boolean => Object.values(OPENSTACK_PATHS).some((p) => url === p || url.startsWith(`${p}/`));
