import type { Context } from './context.js';
import { invalid } from '../model/errors.js';
import { checkName } from '../model/names.js';

/** Site settings a user may change with `kumo config set KEY VALUE`. */
export const SETTINGS = {
  'wizard.bridge': { default: '', help: 'libvirt network (mode bridge) behind the wizard\'s "1. Bridge" choice, e.g. br0' },
  'wizard.nat': { default: 'default', help: 'libvirt network behind the wizard\'s "2. NAT(default)" choice' },
  'wizard.isolated': { default: 'testnet', help: 'libvirt network behind the wizard\'s "3. isolated(testnet)" choice' },
  'instance.networks': { default: '', help: 'networks (comma-separated) of an instance created without --network; empty: default. `kumo lab up` sets its instance segments' },
} as const;

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
    for (const n of value.split(',').filter(Boolean)) checkName('network', n);
    this.ctx.settings.set(k, value);
  }

  list(): { key: string; value: string; help: string }[] {
    return Object.entries(SETTINGS).map(([key, s]) => ({ key, value: this.get(key), help: s.help }));
  }
}
