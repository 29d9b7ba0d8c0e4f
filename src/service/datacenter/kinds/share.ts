import { join } from 'node:path';
import { ShareService } from '../../shares.js';
import { createGuestFile, guestEntry, linkRefused } from '../../../drivers/host/guest-files.js';
import type { Change, Kind } from '../kind.js';
import { machineActor } from '../../../model/actor.js';

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
      // lstat, not exists: a dangling link a guest planted is not "missing" (apply refuses it).
      const entries = await Promise.all(Object.keys(s.files).map(async (f) => [f, await guestEntry(have.path, f)] as const));
      const strange = entries.filter(([, e]) => e === 'link' || e === 'other').map(([f]) => f);
      const missing = entries.filter(([, e]) => e === 'missing').map(([f]) => f);
      if (strange.length) out.push({ action: 'update', kind: 'share', name, why: `${strange.join(', ')} not a plain file (a link a guest made?): apply refuses it` });
      else if (missing.length) out.push({ action: 'update', kind: 'share', name, why: `missing ${missing.join(', ')}` });
    }
    return out;
  },

  async apply(c, { ctx, dc }) {
    const s = dc.shares[c.name]!;
    const svc = new ShareService(ctx, machineActor(dc.project));
    if (c.action === 'recreate') await svc.delete(c.name);
    if (!ctx.shares.get(c.name)) await svc.create(c.name, { networks: s.networks, readOnly: s.read_only });
    const path = ctx.shares.get(c.name)!.path;
    // Guests may write here: every entry is looked at before anything is written, and each
    // file is created without following links (a link planted in between still fails).
    for (const file of Object.keys(s.files)) {
      const e = await guestEntry(path, file);
      if (e === 'link' || e === 'other') throw linkRefused(join(path, file), e === 'link' ? 'a symbolic link' : 'not a plain file');
    }
    for (const [file, text] of Object.entries(s.files)) await createGuestFile(path, file, text);
    return s;
  },

  async remove(name, _applied, { ctx }) {
    // In the project it was made in (the file's project may have changed since).
    const s = ctx.shares.get(name);
    if (s) await new ShareService(ctx, machineActor(s.project)).delete(name);
  },
};
