import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ShareService } from '../../shares.js';
import type { Change, Kind } from '../kind.js';

const access = (networks: string[], readOnly: boolean) => `${networks.join(', ')}${readOnly ? ' (ro)' : ''}`;

/** A share (NFS from the storage node) with the files it starts with (never overwritten). */
export const shareKind: Kind = {
  kind: 'share',
  exclusive: true,
  pruned: 'no longer in the file',
  wanted: (dc) => Object.keys(dc.shares),

  async diff({ ctx, dc }) {
    const out: Change[] = [];
    for (const [name, s] of Object.entries(dc.shares)) {
      const have = ctx.shares.get(name);
      if (!have) { out.push({ action: 'create', kind: 'share', name, why: `serve to ${s.networks.join(', ')}` }); continue; }
      if (have.networks.join() !== s.networks.join() || have.readOnly !== s.read_only) {
        // Its exports are made for its networks: it is made anew (its folder and files stay).
        out.push({ action: 'recreate', kind: 'share', name, why: `networks/access are ${access(have.networks, have.readOnly)}, should be ${access(s.networks, s.read_only)}` });
        continue;
      }
      const missing = Object.keys(s.files).filter((f) => !existsSync(join(have.path, f)));
      if (missing.length) out.push({ action: 'update', kind: 'share', name, why: `missing ${missing.join(', ')}` });
    }
    return out;
  },

  async apply(c, { ctx, dc }) {
    const s = dc.shares[c.name]!;
    const svc = new ShareService(ctx);
    if (c.action === 'recreate') await svc.delete(c.name);
    if (!ctx.shares.get(c.name)) await svc.create(c.name, { networks: s.networks, readOnly: s.read_only });
    const path = ctx.shares.get(c.name)!.path;
    for (const [file, text] of Object.entries(s.files)) {
      if (!existsSync(join(path, file))) await writeFile(join(path, file), text, { mode: 0o644 });
    }
    return s;
  },

  async remove(name, _applied, { ctx }) {
    if (ctx.shares.get(name)) await new ShareService(ctx).delete(name);
  },
};
