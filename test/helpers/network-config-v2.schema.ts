/**
 * cloud-init's network-config version 2 (the subset of netplan it renders on every distro), as a
 * JSON Schema written from cloud-init's documentation ("Networking config Version 2",
 * doc/rtd/reference/network-config-format-v2.rst), not from kumo's code.
 *
 * Why not cloud-init itself: Debian 12's cloud-init (22.4) validates only cloud-config
 * (`cloud-init schema -c FILE`); a network-config schema and `--schema-type network-config`
 * came in later releases. Where the installed one has them, the seed test uses it as well.
 */

const ip = { type: 'string', minLength: 2 };
const overrides = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(['hostname', 'route-metric', 'send-hostname', 'use-dns', 'use-domains', 'use-hostname', 'use-mtu', 'use-ntp', 'use-routes']
    .map((k) => [k, k === 'hostname' ? { type: 'string' } : k === 'route-metric' ? { type: 'integer', minimum: 0 } : { type: 'boolean' }])),
};

/** Properties every device type takes. */
const common = {
  renderer: { enum: ['networkd', 'NetworkManager'] },
  dhcp4: { type: 'boolean' },
  dhcp6: { type: 'boolean' },
  'dhcp4-overrides': overrides,
  'dhcp6-overrides': overrides,
  addresses: { type: 'array', items: { type: 'string', pattern: '^[0-9A-Fa-f:.]+/[0-9]{1,3}$' } },
  gateway4: ip,
  gateway6: ip,
  mtu: { type: 'integer', minimum: 68 },
  nameservers: {
    type: 'object', additionalProperties: false,
    properties: { addresses: { type: 'array', items: ip }, search: { type: 'array', items: { type: 'string' } } },
  },
  routes: {
    type: 'array',
    items: { type: 'object', required: ['to', 'via'], additionalProperties: false, properties: { to: ip, via: ip, metric: { type: 'integer', minimum: 0 } } },
  },
};

/** What a physical device adds: match rules (all must match), a new name, wake on LAN. */
const physical = {
  match: {
    type: 'object', additionalProperties: false, minProperties: 1,
    properties: {
      name: { type: 'string', minLength: 1 },
      // "xx:xx:xx:xx:xx:xx. Globs are not allowed. Letters must be lowercase."
      macaddress: { type: 'string', pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$' },
      driver: { type: 'string', minLength: 1 },
    },
  },
  'set-name': { type: 'string', pattern: '^[^\\s/]{1,15}$' },
  wakeonlan: { type: 'boolean' },
};

const devices = (properties: object) => ({
  type: 'object',
  propertyNames: { minLength: 1 },
  additionalProperties: { type: 'object', additionalProperties: false, properties },
});

export const networkConfigV2Schema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'cloud-init network-config version 2',
  type: 'object',
  required: ['version'],
  // "version: 2 and one or more of possible device types"
  anyOf: ['ethernets', 'bonds', 'bridges', 'vlans'].map((t) => ({ required: [t] })),
  additionalProperties: false,
  properties: {
    version: { const: 2 },
    renderer: { enum: ['networkd', 'NetworkManager'] },
    ethernets: devices({ ...common, ...physical }),
    bonds: devices({ ...common, interfaces: { type: 'array', items: { type: 'string' } }, parameters: { type: 'object' } }),
    bridges: devices({ ...common, interfaces: { type: 'array', items: { type: 'string' } }, parameters: { type: 'object' } }),
    vlans: devices({ ...common, id: { type: 'integer', minimum: 0, maximum: 4094 }, link: { type: 'string' } }),
  },
} as const;
