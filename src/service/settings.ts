import type { Context } from './context.js';
import { invalid } from '../model/errors.js';
import { checkName } from '../model/names.js';

/** Site settings a user may change with `kumo config set KEY VALUE`. */
export const SETTINGS = {
  'wizard.bridge': { default: '', help: 'libvirt network (mode bridge) behind the wizard\'s "1. Bridge" choice, e.g. br0' },
  'wizard.nat': { default: 'default', help: 'libvirt network behind the wizard\'s "2. NAT(default)" choice' },
  'wizard.isolated': { default: 'testnet', help: 'libvirt network behind the wizard\'s "3. isolated(testnet)" choice' },
  'instance.networks': { default: '', help: 'networks (comma-separated) of an instance created without --network; empty: default. `kumo lab up` sets its instance segments' },
  // Each long operation (a create, a migration, an image build) holds QEMU, qemu-img or a download: bound what API tokens can start at once.
  'api.operations-per-token': { default: '4', count: true, help: 'how many long operations (create, migrate, image build/import, apply, destroy, evacuate) one API token may have running at once; more answer 429' },
  'api.operations-total': { default: '16', count: true, help: 'how many long operations all API tokens together may have running at once; more answer 429' },
} as const;

/** The API's caps on concurrent long operations (settings api.operations-per-token and api.operations-total). */
export function operationLimits(ctx: Context): { perOwner: number; total: number } {
  const svc = new SettingsService(ctx);
  return { perOwner: Number(svc.get('api.operations-per-token')), total: Number(svc.get('api.operations-total')) };
}

export type SettingKey = keyof typeof SETTINGS;

export class SettingsService {
  constructor(private readonly ctx: Context) {}

  private check(key: string): SettingKey {
    if (!(key in SETTINGS)) throw invalid(`unknown setting "${key}"`, `known settings: ${Object.keys(SETTINGS).join(', ')}`);
    return key as SettingKey;
  }

  get(key: string): string {
    const k = this.check(key);
    return this.ctx.settings.get(k) ?? SETTINGS[k].default;
  }

  set(key: string, value: string): void {
    const k = this.check(key);
    if ('count' in SETTINGS[k]) {
      if (!/^[1-9]\d{0,3}$/.test(value)) throw invalid(`${k} must be a whole number from 1 to 9999, not "${value}"`, `e.g. kumo config set ${k} ${SETTINGS[k].default}`);
    } else {
      for (const n of value.split(',').filter(Boolean)) checkName('network', n);
    }
    this.ctx.settings.set(k, value);
  }

  list(): { key: string; value: string; help: string }[] {
    return Object.entries(SETTINGS).map(([key, s]) => ({ key, value: this.get(key), help: s.help }));
  }
}
