import { KumoError } from '../../../model/errors.js';
import { FlavorService } from '../../flavors.js';
import type { Change, Kind } from '../kind.js';

/** The file's own flavors (an existing one of another size is updated; a built-in one cannot be). */
export const flavorKind: Kind = {
  kind: 'flavor',
  exclusive: false,
  pruned: 'no longer in the file',
  wanted: (dc) => Object.keys(dc.flavors),

  async diff({ ctx, dc, refuse }) {
    const out: Change[] = [];
    for (const [name, f] of Object.entries(dc.flavors)) {
      const have = ctx.flavors.get(name);
      const spec = `${f.vcpus} vCPU / ${f.ram_mib} MiB / ${f.disk_gib} GiB`;
      if (!have) { out.push({ action: 'create', kind: 'flavor', name, why: spec }); continue; }
      if (have.vcpus === f.vcpus && have.ramMiB === f.ram_mib && have.diskGiB === f.disk_gib) continue;
      if (have.builtin) {
        refuse(['flavors', name], new KumoError('IN_USE', `flavor "${name}" is built in (${have.vcpus} vCPU / ${have.ramMiB} MiB / ${have.diskGiB} GiB) and cannot be redefined`, `give the file's flavor another name than ${name}`));
        continue;
      }
      out.push({ action: 'update', kind: 'flavor', name, why: `is ${have.vcpus} vCPU / ${have.ramMiB} MiB / ${have.diskGiB} GiB, should be ${spec} (instances keep their size)` });
    }
    return out;
  },

  async apply(c, { ctx, dc }) {
    const f = dc.flavors[c.name]!;
    const flavors = new FlavorService(ctx);
    // An update changes the sizes in place: a refused size must not cost the flavor.
    if (c.action === 'update') flavors.update(c.name, f.vcpus, f.ram_mib, f.disk_gib);
    else flavors.create(c.name, f.vcpus, f.ram_mib, f.disk_gib);
    return f;
  },

  async remove(name, _applied, { ctx }) {
    if (ctx.flavors.get(name)) new FlavorService(ctx).delete(name);
  },
};
