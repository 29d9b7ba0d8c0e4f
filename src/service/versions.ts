import { defaultLibvirtUri } from '../config.js';
import { toolVersions, type ToolVersion } from '../drivers/host/tool-versions.js';

export type { ToolVersion };

/**
 * What `kumo version` reports beside kumo's own build: the programs kumo drives, as found on
 * this machine. Opens no store and no libvirt connection of kumo's own: anyone may ask, and it
 * reads nothing secret.
 */
export function installedVersions(uri: string = defaultLibvirtUri): Promise<ToolVersion[]> {
  return toolVersions(uri);
}
