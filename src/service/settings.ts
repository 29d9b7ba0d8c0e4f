import type { Context } from './context.js';
import { invalid } from '../model/errors.js';
import { checkName } from '../model/names.js';
import { parseCount } from '../model/sizes.js';
import { renderConfigFile } from '../model/config-file.js';
import { configFileSettings } from '../config.js';

/** Site settings a user may change with `kumo config set KEY VALUE`. */
export const SETTINGS = {
  'wizard.bridge': { default: '', help: 'libvirt network (mode bridge) behind the wizard\'s "1. Bridge" choice, e.g. br0' },
  'wizard.nat': { default: 'default', help: 'libvirt network behind the wizard\'s "2. NAT(default)" choice' },
  'wizard.isolated': { default: 'testnet', help: 'libvirt network behind the wizard\'s "3. isolated(testnet)" choice' },
  'instance.networks': { default: '', help: 'networks (comma-separated) of an instance created without --network; empty: default. `kumo lab up` sets its instance segments' },
  // Each long operation (a create, a migration, an image build) holds QEMU, qemu-img or a download: bound what API tokens can start at once.
  'api.operations-per-token': { default: '4', help: 'how many long operations (create, migrate, image build/import, apply, destroy, evacuate) one API token may have running at once; more answer 429' },
  'api.operations-total': { default: '16', help: 'how many long operations all API tokens together may have running at once; more answer 429' },
  // Only root on the machine sets these (`kumo config set`; the API has no settings route).
  'image.mirrors': { default: '', help: 'hosts (comma-separated) the API may import images from although they resolve to loopback, link-local or private addresses: the site\'s own mirrors' },
  // Keystone's catalog names one region; OpenStack clients pick endpoints by it (OS_REGION_NAME).
  'openstack.region': { default: 'RegionOne', help: 'the region the OpenStack API\'s catalog names (clients\' OS_REGION_NAME / region_name in clouds.yaml)' },
  'image.max_import_gib': { default: '20', help: 'the largest image (GiB, e.g. 20 or 0.5) an import downloads; larger downloads stop and leave nothing' },
} as const;

/** The API's caps on concurrent long operations (settings api.operations-per-token and api.operations-total). */
export function operationLimits(ctx: Context): { perOwner: number; total: number } {
  const svc = new SettingsService(ctx);
  return { perOwner: Number(svc.get('api.operations-per-token')), total: Number(svc.get('api.operations-total')) };
}

/** Operation caps go through the one bounded count parser the CLI and API use. */
const wholeCount = (key: string) => (value: string) => { parseCount(key, value, { min: 1, max: 9999 }); };

/** How each setting's value is checked (default: a comma-separated list of network names). */
const CHECKS: Partial<Record<keyof typeof SETTINGS, (value: string) => void>> = {
  'api.operations-per-token': wholeCount('api.operations-per-token'),
  'api.operations-total': wholeCount('api.operations-total'),
  'image.mirrors': (value) => {
    for (const host of value.split(',').map((h) => h.trim()).filter(Boolean)) {
      if (!/^([A-Za-z0-9-]+\.)*[A-Za-z0-9-]+$|^[0-9A-Fa-f:.]+$/.test(host)) throw invalid(`"${host}" is not a host name or address`, 'e.g. mirror.example.org,10.0.0.5');
    }
  },
  'openstack.region': (value) => {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(value)) throw invalid(`"${value}" is not a region name`, 'letters, digits, ".", "_" and "-", e.g. RegionOne');
  },
  'image.max_import_gib': (value) => {
    if (!/^[0-9]{1,6}(\.[0-9]{1,9})?$/.test(value) || Number(value) <= 0) throw invalid(`"${value}" is not a positive number of GiB`, 'e.g. 20, or 0.5');
  },
};

export type SettingKey = keyof typeof SETTINGS;

function checkValue(key: SettingKey, value: string): void {
  const check = CHECKS[key] ?? ((v: string) => { for (const n of v.split(',').filter(Boolean)) checkName('network', n); });
  check(value);
}

let checkedFileDefaults: Partial<Record<SettingKey, string>> | undefined;

/**
 * The config file's settings, held to the same checks as `kumo config set` (a typo is said, not
 * ignored); checked once a process, as the file is read once.
 */
function fileDefaults(): Partial<Record<SettingKey, string>> {
  if (checkedFileDefaults) return checkedFileDefaults;
  const out: Partial<Record<SettingKey, string>> = {};
  for (const [key, value] of Object.entries(configFileSettings())) {
    if (!(key in SETTINGS)) throw invalid(`kumo's config file (KUMO_CONFIG=${process.env.KUMO_CONFIG ?? ''}) sets an unknown setting "${key}"`, `known settings: ${Object.keys(SETTINGS).join(', ')}`);
    try {
      checkValue(key as SettingKey, value);
    } catch (e) {
      throw invalid(`kumo's config file (KUMO_CONFIG=${process.env.KUMO_CONFIG ?? ''}): ${key}: ${e instanceof Error ? e.message : String(e)}`, 'fix the value there, or comment the line out');
    }
    out[key as SettingKey] = value;
  }
  checkedFileDefaults = out;
  return out;
}

/** The documented default config file (the package's /etc/kumo/kumo.conf): every variable and setting. */
export const defaultConfigFile = (): string =>
  renderConfigFile(Object.entries(SETTINGS).map(([key, s]) => ({ key, default: s.default, help: s.help })));

export class SettingsService {
  constructor(private readonly ctx: Context) {}

  private check(key: string): SettingKey {
    if (!(key in SETTINGS)) throw invalid(`unknown setting "${key}"`, `known settings: ${Object.keys(SETTINGS).join(', ')}`);
    return key as SettingKey;
  }

  get(key: string): string {
    const k = this.check(key);
    return this.ctx.settings.get(k) ?? fileDefaults()[k] ?? SETTINGS[k].default;
  }

  set(key: string, value: string): void {
    const k = this.check(key);
    checkValue(k, value);
    this.ctx.settings.set(k, value);
  }

  list(): { key: string; value: string; help: string }[] {
    return Object.entries(SETTINGS).map(([key, s]) => ({ key, value: this.get(key), help: s.help }));
  }
}
