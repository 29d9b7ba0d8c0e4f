import { z } from 'zod';
import { EVACUATE_PARALLEL, WAF_LOG_LIMIT } from '../model/sizes.js';
import { name, named, seconds, timestamp, whole } from './schema-common.js';
import { NETWORK_MODES } from '../service/networks.js';
import { HOST_ROLES } from '../model/roles.js';
import { portSchema } from '../model/check-schemas.js';

/**
 * Every request and response body of the API, declared once: Fastify validates and serializes
 * with these (fastify-type-provider-zod), the handlers are type-checked against them, and the
 * OpenAPI document at /openapi.json is generated from them. Schemas registered in `registry`
 * become named components (#/components/schemas/NAME).
 *
 * Request bodies are strict (an unknown key is a 400 naming it: a typo such as "ram" for
 * "ramMiB" must not be silently ignored). Sizes carry the bounds of model/sizes.ts, so the
 * document shows them and a wrong one is refused naming the field; names and everything that
 * needs libvirt or the store are checked by the services, as for the CLI.
 */
/** Where every API route lives; the version changes only with an incompatible change. */
/** Where `kumo serve` listens unless told otherwise, and where its interactive API page is. */
export const DEFAULT_PORT = 8780;
export const DOCS_PATH = '/docs';
export const API_PREFIX = '/api/v1';

export * from './schema-common.js';

export const Health = named('Health', z.object({ status: z.literal('ok'), version: z.string() }));

// ---------------------------------------------------------------------------------------- flavors

export const Flavor = named('Flavor', z.object({
  name: z.string(), vcpus: z.number().int(), ramMiB: z.number().int(), diskGiB: z.number().int(),
  builtin: z.boolean().describe('small and medium come with kumo and cannot be deleted'),
}));

export const FlavorCreate = named('FlavorCreate', z.strictObject({
  name: name('flavor'),
  vcpus: whole('vcpus', 'virtual CPUs'),
  ramMiB: whole('ram', 'memory in MiB'),
  diskGiB: whole('disk-size', 'root disk size in GiB'),
}));

// ----------------------------------------------------------------------------------------- images

export const Image = named('Image', z.object({
  name: z.string(),
  os: z.string().describe('what the wizard shows, e.g. "CentOS 7.8"'),
  disk: z.string().describe('the base disk every instance\'s overlay points at'),
  format: z.enum(['qcow2', 'raw']),
  virtualSizeBytes: z.number().int(),
  kernel: z.string().optional(), initrd: z.string().optional(), cmdline: z.string().optional(),
  ready: z.string().optional().describe('how its instances are known ready: http:PORT, ssh, cloud-init or agent (the tiny image: http:8080; others: cloud-init unless set)'),
  source: z.string(),
  createdAt: timestamp,
}));

const readyCheck = z.string().describe('http:PORT (an HTTP answer on PORT), ssh (the SSH banner on 22), cloud-init (its final stage done, seen on the serial console) or agent (the QEMU guest agent answers)');

export const ImageUpdate = named('ImageUpdate', z.strictObject({
  ready: readyCheck.nullable().describe('how its instances are known ready; null: back to the image\'s default'),
}));

export const ImageBuild = named('ImageBuild', z.strictObject({
  recipe: z.enum(['tiny', 'debian-12']).describe('tiny: the busybox test image; debian-12: a Debian 12 cloud image (both from Debian packages)'),
  name: name('image').optional().describe('debian-12: register it under this name (default: the recipe\'s)'),
  sizeGiB: z.number().int().min(2).max(64).optional().describe('debian-12: the image\'s disk size (default 3; instances grow it to their flavor)'),
  packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'a Debian package name')).optional().describe('debian-12: extra Debian packages'),
}));

export const ImageBuilt = named('ImageBuilt', z.object({
  image: Image,
  built: z.boolean().describe('false when the registered image was up to date'),
}));

// -------------------------------------------------------------------------------------- instances

const RuntimeState = z.enum(['running', 'shut off', 'paused', 'in shutdown', 'crashed', 'pmsuspended', 'blocked', 'idle', 'missing', 'unknown'])
  .describe('what libvirt says the domain does (virsh domstate), missing when it is gone, unknown when its host does not answer');

export const Instance = named('Instance', z.object({
  name: z.string(),
  uuid: z.string(),
  host: z.string().describe('the host it lives on'),
  ha: z.boolean().describe('highly available: started on another hypervisor when its host dies (kumo ha run, kumo serve)'),
  state: RuntimeState,
  observedAt: timestamp.describe('when the state was learnt: the lifecycle event, the listing of the host\'s domains, or the question asked for this read'),
  stateSource: z.enum(['events', 'listing', 'asked'])
    .describe('events: kept fresh by libvirt\'s lifecycle events (the API server follows each hypervisor); listing: read from the host\'s list of domains (at start and after a reconnect); asked: asked of libvirt for this read (a host not followed, or whose connection is lost)'),
  image: z.string(),
  flavor: z.string().optional().describe('absent when the sizes were given one by one'),
  vcpus: z.number().int(), ramMiB: z.number().int(), diskGiB: z.number().int(),
  networks: z.array(z.string()),
  nics: z.array(z.object({ mac: z.string(), network: z.string(), ipv4: z.string().optional().describe('from the DHCP lease, once there is one') })),
  dataDisks: z.array(z.number().int()).describe('extra disks made with it, in GiB'),
  passwordSet: z.boolean().describe('whether a root password was set (its hash is never handed out)'),
  sshKeys: z.array(z.string()),
  vnc: z.string().optional().describe('while it runs: the VNC unix socket on its host (root only; the way in is the console ticket), or 127.0.0.1:PORT for an instance defined before VNC moved to a socket'),
  createdAt: timestamp,
  volumes: z.array(z.object({ name: z.string(), device: z.string(), sizeGiB: z.number().int() })),
  drift: z.array(z.string()).describe('differences between kumo\'s record and libvirt, in words'),
  readiness: z.object({
    check: z.string().describe('the image\'s readiness check'),
    status: z.enum(['ready', 'booting', 'failed', 'stopped']),
    detail: z.string().describe('what showed it ready, what it waits for, or why it failed'),
    cloudInit: z.object({
      status: z.enum(['running', 'done', 'failed']), version: z.string().optional(),
      errors: z.array(z.string()).describe('cloud-init\'s warnings and errors in this boot, from the serial console'),
    }).optional().describe('cloud-init in the current boot, as its console shows it; absent when it printed nothing'),
  }).optional().describe('only on GET /instances/{name}: whether the guest is ready by its image\'s check, looked at for this read'),
}));

export const InstanceCreate = named('InstanceCreate', z.strictObject({
  name: name('instance').describe('instance name, also its hostname'),
  image: z.string().min(1).describe('the image to start from (GET /api/v1/images)'),
  flavor: z.string().min(1).optional().describe('a flavor; vcpus, ramMiB and diskGiB override it, or replace it when all three are given'),
  vcpus: whole('vcpus', 'virtual CPUs').optional(),
  ramMiB: whole('ram', 'memory in MiB').optional(),
  diskGiB: whole('disk-size', 'root disk size in GiB').optional(),
  password: z.string().min(1).optional().describe('root password in plain text; hashed (sha512-crypt) at once and never stored'),
  passwordHash: z.string().optional().describe('or a crypt(3) hash such as "$6$salt$..."'),
  sshKeys: z.array(z.string()).optional().describe('ssh public keys for root'),
  networks: z.array(z.string()).optional().describe('networks to attach, in order (default: ["default"])'),
  dataDisks: z.array(whole('disk', 'GiB')).max(8).optional().describe('extra empty data disks, in GiB'),
  userData: z.string().optional().describe('your own #cloud-config, merged with kumo\'s'),
  start: z.boolean().optional().describe('start it (default true)'),
  host: z.string().optional().describe('pin to this host (default: the hypervisor with the most free memory)'),
  ha: z.boolean().optional().describe('highly available (member, as create): when its host dies and is fenced, the HA watcher starts it on another hypervisor with the same disks and addresses'),
  wait: z.boolean().optional().describe('the operation also waits until the guest is ready by its image\'s check (see Image.ready), like `kumo instance create --wait`'),
  waitFor: readyCheck.optional().describe('wait for this check instead of the image\'s (implies wait), like --wait-for'),
}));

export const InstanceStop = named('InstanceStop', z.strictObject({
  timeoutSeconds: seconds.optional().describe('grace period for the ACPI shutdown before pulling the plug (default 60)'),
}));

export const InstanceMigrate = named('InstanceMigrate', z.strictObject({
  to: z.string().min(1).describe('the destination host (GET /api/v1/hosts)'),
  unsafe: z.boolean().optional().describe('skip libvirt\'s shared-storage check (the one-machine lab only)'),
  encrypted: z.boolean().optional().describe('encrypt the memory stream with QEMU\'s TLS; refused at once (400) when either host lacks the certificates'),
}));

export const InstanceStarted = z.object({ started: z.boolean().describe('false when it was running already'), instance: Instance });
export const InstanceStopped = z.object({ forced: z.boolean().describe('true when the guest did not shut down in time and was forced off'), instance: Instance });
export const InstanceAction = z.object({ instance: Instance });
export const InstanceDeleted = z.object({ detachedVolumes: z.array(z.string()).describe('volumes that were attached: kept, now detached') });

// ------------------------------------------------------------------------------------- operations

export const Operation = named('Operation', z.object({
  id: z.string(), owner: z.string().optional().describe('the API token that started it, or "login:NAME" for a dashboard user'), project: z.string().optional(),
  kind: z.string().describe('instance.create, instance.migrate, image.build, image.import, host.evacuate, datacenter.apply, datacenter.destroy'),
  target: z.string().describe('the resource it works on'),
  state: z.enum(['running', 'succeeded', 'failed']),
  step: z.string().optional().describe('the step it is at'), steps: z.array(z.string()).describe('steps so far, in order'),
  waiting: z.object({ what: z.string(), seconds: z.number().int(), hint: z.string().optional() }).optional().describe('what the step waits for once over 2 s (a lease, a daemon, libvirt); gone at the next step'),
  result: z.unknown().optional().describe('what it made, once it succeeded (instance.create: an Instance)'),
  error: z.object({ code: z.string(), message: z.string(), fix: z.string().optional() }).optional(),
  createdAt: timestamp, updatedAt: timestamp, finishedAt: timestamp.optional(),
}), 'long work that runs after its request was answered; follow it at GET /api/v1/operations/{id} or on /api/v1/events');

export const Accepted = named('Accepted', z.object({ operation: Operation }));

// --------------------------------------------------------------------------------------- networks

export const Network = named('Network', z.object({
  name: z.string(),
  mode: z.enum(NETWORK_MODES),
  cidr: z.string().optional(), gateway: z.string().optional(),
  dhcp: z.object({ start: z.string(), end: z.string() }).optional(),
  bridge: z.string().optional(),
  active: z.boolean(), autostart: z.boolean(), persistent: z.boolean(),
  builtinPending: z.boolean().optional().describe('a built-in network made the first time an instance uses it'),
  instances: z.array(z.string()),
}));

export const NetworkCreate = named('NetworkCreate', z.strictObject({
  name: name('network'),
  mode: z.enum(NETWORK_MODES),
  cidr: z.string().optional().describe('nat/isolated: the subnet, e.g. 192.168.222.0/24'),
  gateway: z.string().optional().describe('the host\'s address on it, full or a suffix like ".1"'),
  dhcp: z.string().optional().describe('DHCP range START-END, e.g. ".2-.254"'),
  noDhcp: z.boolean().optional(),
  bridge: z.string().optional().describe('nat/isolated: the bridge to make (default: the next free virbrN); bridge/ovs: the host bridge'),
  createBridge: z.boolean().optional().describe('bridge/ovs: make the host bridge too (and remove it with the network)'),
  autostart: z.boolean().optional(),
}));

// ---------------------------------------------------------------------------------------- volumes

export const Volume = named('Volume', z.object({
  name: z.string(), sizeGiB: z.number().int(), file: z.string(),
  instance: z.string().optional(), device: z.string().optional().describe('the libvirt target, e.g. vdb'),
  createdAt: timestamp, drift: z.array(z.string()),
}));

export const VolumeCreate = named('VolumeCreate', z.strictObject({ name: name('volume'), sizeGiB: whole('disk', 'size in GiB') }));
export const VolumeAttach = named('VolumeAttach', z.strictObject({ instance: z.string().min(1) }));
export const VolumeDetach = named('VolumeDetach', z.strictObject({
  timeoutSeconds: seconds.optional().describe('how long to wait for a running guest to release it (default 60)'),
}));
export const VolumeAttached = z.object({ volume: Volume, live: z.boolean().describe('true: hot-plugged; false: the guest sees it on its next start') });
export const VolumeDetached = z.object({ volume: Volume, instance: z.string().describe('the instance it was attached to') });

// -------------------------------------------------------------------------------------- snapshots

export const Snapshot = named('Snapshot', z.object({
  instance: z.string(), name: z.string(),
  creationTime: z.number().int().describe('seconds since the epoch'),
  state: z.enum(['running', 'shutoff', 'paused', 'disk-snapshot', 'crashed', 'pmsuspended', 'blocked', 'nostate']),
  parent: z.string().optional(),
  memory: z.boolean().describe('whether the guest\'s memory is in it'),
  disks: z.array(z.string()),
}));

export const SnapshotCreate = named('SnapshotCreate', z.strictObject({
  name: z.string().min(1).max(63).optional().describe('default: the creation time in epoch seconds, like virsh snapshot-create'),
}));
export const SnapshotRevert = named('SnapshotRevert', z.strictObject({
  to: z.enum(['snapshot', 'running', 'paused']).optional().describe('the state to leave the instance in (default: the snapshot\'s own)'),
  force: z.boolean().optional(),
}));
export const SnapshotReverted = z.object({ instance: z.string(), snapshot: z.string(), state: RuntimeState });

// ------------------------------------------------------------------------------------------ hosts

export const Host = named('Host', z.object({
  name: z.string(),
  uri: z.string().optional().describe('libvirt URI (hypervisors)'),
  migrationAddress: z.string().optional(),
  roles: z.array(z.enum(HOST_ROLES)),
  shell: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('local') }),
    z.object({ kind: z.literal('netns'), netns: z.string() }),
    z.object({ kind: z.literal('ssh'), destination: z.string(), port: z.number().int().optional(), identity: z.string().optional() }),
  ]).describe('where commands on the host itself run'),
  createdAt: timestamp,
  up: z.boolean(),
  cpus: z.number().int().optional(), memoryMiB: z.number().int().optional(),
  allocatedVcpus: z.number().int(), allocatedMiB: z.number().int(), instances: z.number().int(),
  fence: z.enum(['lab', 'command', 'none']).optional().describe('how the HA watcher fences it: the lab\'s own kill, a command set on the machine (never shown), or none (then its instances are never started elsewhere)'),
  ha: z.object({
    state: z.enum(['up', 'down', 'fenced', 'unfenced']).describe('down: missed heartbeats; fenced: off, its HA instances started elsewhere; unfenced: could not be fenced, nothing started elsewhere'),
    downAt: timestamp.optional(), fencedAt: timestamp.optional(), rejoinedAt: timestamp.optional(),
    fenceError: z.string().optional(),
    fix: z.string().optional().describe('what to do about an unfenced host'),
    moved: z.array(z.object({ instance: z.string(), to: z.string(), at: timestamp })).describe('HA instances started elsewhere since it went down'),
  }).optional().describe('its host-failure story (the HA watcher: kumo ha run, kumo serve)'),
}));

export const HostAdd = named('HostAdd', z.strictObject({
  name: name('host'),
  uri: z.string().min(1).optional().describe('libvirt URI (hypervisors): qemu:///system, qemu+ssh://root@kvm2/system or qemu+tls://kvm2/system, or a lab libvirtd kumo made: qemu+unix:///system?socket=KUMO_HOME/lab/libvirt/NODE/run/libvirt-sock. No other transport (ext, tcp) and no other parameter (command=, netcat=, keyfile=, ...)'),
  migrationAddress: z.string().min(1).optional().describe('the address other hypervisors send migration traffic to'),
  roles: z.array(z.enum(HOST_ROLES)).optional().describe('default: ["hypervisor"]'),
  shell: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('local') }),
    z.strictObject({ kind: z.literal('netns'), netns: z.string().min(1) }),
    z.strictObject({ kind: z.literal('ssh'), destination: z.string().min(1), port: portSchema.optional(), identity: z.string().optional().describe('refused over the API (a key file on the server): `kumo host add --ssh-key` on the machine') }),
  ]).optional().describe('where commands on the host run (default: what the URI implies: ssh for qemu+ssh://, else this machine)'),
}));

export const HostInfo = named('HostInfo', z.object({
  name: z.string(), libvirtUri: z.string(), libvirtAnswers: z.boolean(),
  libvirt: z.string().optional(), hypervisor: z.string().optional(),
  accel: z.string().optional().describe('kvm, or tcg (software emulation)'), accelReason: z.string().optional(),
  cpus: z.number().int(), memoryMiB: z.number().int(), freeMemoryMiB: z.number().int(),
  missing: z.array(z.object({ tool: z.string(), package: z.string() })).describe('tools kumo needs that are not installed, with their Debian package'),
  libvirtdKvm: z.enum(['device', 'masked', 'absent']).optional().describe('what the local libvirtd finds at /dev/kvm: the device, a mask, or nothing'),
  problems: z.array(z.object({ problem: z.string(), fix: z.string() })).describe('what stands in kumo\'s way on this machine, each with its fix'),
}), 'the machine kumo (this server) runs on, like `kumo host info`');

export const HostEvacuate = named('HostEvacuate', z.strictObject({
  parallel: z.number().int().min(EVACUATE_PARALLEL.min).max(EVACUATE_PARALLEL.max).optional().describe('migrations at once (default 2)'),
  unsafe: z.boolean().optional().describe('skip libvirt\'s shared-storage check (the one-machine lab only)'),
  encrypted: z.boolean().optional().describe('encrypt every memory stream with QEMU\'s TLS; an instance whose hosts lack the certificates stays where it is'),
}));

// ----------------------------------------------------------------------------- more resource actions

export const InstanceResize = named('InstanceResize', z.strictObject({ diskGiB: whole('disk-size', 'the new root disk size in GiB (only growing)') }));
export const InstanceResized = z.object({ fromGiB: z.number().int(), toGiB: z.number().int() });
export const VolumeResize = named('VolumeResize', z.strictObject({ sizeGiB: whole('disk', 'the new size in GiB (only growing)') }));
export const VolumeResized = z.object({
  volume: Volume, fromGiB: z.number().int(),
  how: z.enum(['unchanged', 'offline', 'live']).describe('live: the running guest sees the new size now'),
});
export const NetworkDefine = named('NetworkDefine', z.strictObject({ xml: z.string().min(1).describe('a libvirt network XML document, like the course\'s testnat.xml') }));
export const NetworkAutostart = named('NetworkAutostart', z.strictObject({ enabled: z.boolean().describe('start it with libvirtd') }));
export const ImageImport = named('ImageImport', z.strictObject({
  name: name('image'),
  source: z.string().min(1).describe('an http(s) URL of a qcow2 or raw disk image; loopback, link-local and private addresses only for a mirror the site named (setting image.mirrors); at most image.max_import_gib GiB'),
  os: z.string().optional().describe('what the wizard shows, e.g. "CentOS 7.8"'),
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hex digits').optional().describe('expected checksum of the file'),
  kernel: z.string().optional().describe('refused over the API (a file on the server): `kumo image import --kernel` on the machine'),
  initrd: z.string().optional(), cmdline: z.string().optional(),
  ready: readyCheck.optional().describe('how its instances are known ready (default cloud-init)'),
}));
/** A response that is text of one media type (XML, a log), not JSON. */
export const Text = (what: string, type: 'text/plain' | 'application/xml' = 'text/plain') => ({ description: what, content: { [type]: { schema: z.string() } } });

// ----------------------------------------------------------------------------------------- shares

export const Share = named('Share', z.object({
  name: z.string(),
  path: z.string().describe('the folder it serves (on the storage host, the same path)'),
  networks: z.array(z.string()).describe('networks whose instances may mount it'),
  readOnly: z.boolean(),
  createdAt: timestamp,
  server: z.string().optional().describe('the storage host that serves it (absent: the machine kumo runs on)'),
  mounts: z.array(z.object({ network: z.string(), source: z.string(), command: z.string().describe('what a guest on that network runs') })),
}), 'a folder served over NFSv4.1 to instance networks');

export const ShareCreate = named('ShareCreate', z.strictObject({
  name: name('share'),
  networks: z.array(z.string().min(1)).min(1).describe('networks whose instances may mount it'),
  path: z.string().min(1).optional().describe('an existing folder under KUMO_HOME/shares to share (default: KUMO_HOME/shares/NAME, made for it); other folders of the server: only `kumo share create --path` on the machine'),
  readOnly: z.boolean().optional().describe('instances may read, not write (default false)'),
}));

// ---------------------------------------------------------------------------------- load balancers

export const LoadBalancer = named('LoadBalancer', z.object({
  name: z.string(),
  host: z.string().describe('the host (role lb) its HAProxy and WAF run on'),
  frontend: z.object({ address: z.string(), port: z.number().int() }).describe('the public address and port clients use'),
  instances: z.array(z.string()),
  network: z.string(),
  backendPort: z.number().int(),
  internalPort: z.number().int(),
  waf: z.object({ enabled: z.boolean(), paranoia: z.number().int() }).nullable(),
  createdAt: timestamp,
  running: z.boolean(),
  wafRunning: z.boolean().optional(),
  backends: z.array(z.object({ instance: z.string(), address: z.string().optional(), status: z.string().describe('HAProxy\'s UP/DOWN, or NO ADDRESS, NOT SYNCED'), check: z.string().optional() })),
}));

export const LoadBalancerCreate = named('LoadBalancerCreate', z.strictObject({
  name: name('load balancer'),
  host: z.string().min(1).describe('a host with the lb role'),
  frontend: z.string().min(1).describe('ADDRESS or ADDRESS:PORT (default port 80); the address must be the host\'s own'),
  network: z.string().min(1).describe('the network the LB reaches its instances on'),
  instances: z.array(z.string().min(1)).min(1).describe('the instances behind it'),
  backendPort: portSchema.optional().describe('the instances\' port (default 8080)'),
  waf: z.strictObject({
    enabled: z.boolean().describe('false: detection only (logs attacks, lets them through)'),
    paranoia: z.number().int().min(1).max(4).optional().describe('OWASP CRS paranoia level (default 1)'),
  }).optional().describe('ModSecurity with the OWASP Core Rule Set in front'),
}));

export const LoadBalancerInstances = named('LoadBalancerInstances', z.strictObject({
  instances: z.array(z.string().min(1)).describe('the instances behind it (replaces the list)'),
}));

export const WafEvent = named('WafEvent', z.object({
  time: timestamp, client: z.string(), method: z.string(), uri: z.string(),
  status: z.number().int().describe('what the client got: 403 when blocked'),
  blocked: z.boolean(),
  ruleIds: z.array(z.string()).describe('every rule that matched, e.g. 942100'),
  messages: z.array(z.string()),
  id: z.string().describe('ModSecurity\'s transaction id'),
}), 'a request the web application firewall blocked or flagged');

export const WafLogQuery = z.object({ limit: z.coerce.number().int().min(WAF_LOG_LIMIT.min).max(WAF_LOG_LIMIT.max).optional().describe('how many, newest last (default 50)') });

// ------------------------------------------------------------------------------- datacenter files

export const PlanRequest = named('PlanRequest', z.strictObject({
  file: z.string().min(1).describe('the datacenter file\'s YAML text (kumo plan --schema has its JSON Schema)'),
  filename: z.string().min(1).max(200).optional().describe('what errors call it, with line and column (default "datacenter.yaml")'),
}));

export const Change = named('Change', z.object({
  action: z.enum(['create', 'update', 'start', 'recreate', 'delete']),
  kind: z.string().describe('lab, image, flavor, share, instance, loadbalancer, firewall, edge, monitoring'),
  name: z.string(),
  why: z.string().describe('what differs between the file and what runs'),
  host: z.string().optional().describe('an instance to create: the hypervisor the plan placed it on'),
}), 'one change of a plan');

export const Plan = named('Plan', z.object({
  datacenter: z.string().describe('the file\'s name: key'),
  changes: z.array(Change).describe('what apply would do, in order; empty: the datacenter matches the file'),
}));
