import { Command } from 'commander';
import { json, table } from '../render.js';
import { buildInfo } from '../build-info.js';
import { installedVersions } from '../../service/versions.js';

/**
 * `kumo version`: kumo's own version and commit (what `kumo --version` prints, at once) plus the
 * versions of libvirt, QEMU and the daemons found here, each probed with a short timeout.
 */
export function versionCommand(): Command {
  return new Command('version')
    .description('kumo\'s version and commit, and the libvirt, QEMU, HAProxy, nginx/ModSecurity and nfs-ganesha found on this machine (anyone may run it)')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const kumo = buildInfo();
      const tools = await installedVersions();
      if (o.json) return console.log(json({ kumo, components: tools }));
      console.log(`kumo ${kumo.version} (commit ${kumo.commit})`);
      console.log(table(['Component', 'Version', 'Detail'], tools.map((t) => [t.name, t.version ?? '-', t.detail ?? ''])));
    });
}
