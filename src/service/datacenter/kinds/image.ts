import { existsSync } from 'node:fs';
import type { Datacenter } from '../../../model/datacenter.js';
import { KumoError } from '../../../model/errors.js';
import type { Context } from '../../context.js';
import { ImageService } from '../../images.js';
import type { Change, Kind } from '../kind.js';

type ImageSpec = Datacenter['images'][string];

/**
 * The tiny image is rebuilt when its recipe changed; a Debian image is built once (its cache
 * key follows the mirror's state, and a rebuild takes minutes: `kumo image build` refreshes it).
 */
async function imageState(ctx: Context, name: string, spec: ImageSpec): Promise<'missing' | 'current' | 'stale' | KumoError> {
  if (spec.build === 'tiny') return new ImageService(ctx).tinyState();
  const image = ctx.images.get(name);
  if (!image || !existsSync(image.disk)) return 'missing';
  if (!image.source.startsWith(`${spec.build}:`)) {
    return new KumoError('ALREADY_EXISTS', `image "${name}" exists and was not built by \`kumo image build ${spec.build}\``, `rename the image in the file, or delete it first: kumo image delete ${name}`);
  }
  return 'current';
}

/** An image kumo builds from a recipe (the tiny image, a Debian cloud image). */
export const imageKind: Kind = {
  kind: 'image',
  exclusive: false,
  wanted: (dc) => Object.keys(dc.images),

  async diff({ ctx, dc, refuse }) {
    const out: Change[] = [];
    for (const [name, image] of Object.entries(dc.images)) {
      const state = await imageState(ctx, name, image);
      if (state instanceof KumoError) refuse(['images', name], state);
      if (state === 'missing') out.push({ action: 'create', kind: 'image', name, why: `build ${image.build}` });
      if (state === 'stale') out.push({ action: 'update', kind: 'image', name, why: `registered from an older ${image.build} recipe` });
    }
    return out;
  },

  async apply(c, { ctx, dc }) {
    const spec = dc.images[c.name]!;
    const images = new ImageService(ctx);
    if (spec.build === 'tiny') await images.buildTiny();
    else await images.buildDebian({ recipe: spec.build, name: c.name, packages: spec.packages, ...(spec.size ? { sizeGiB: spec.size } : {}) });
    return spec;
  },

  // Only an image no instance uses any more (another file's instances may still run on it).
  async remove(name, _applied, { ctx }) {
    if (ctx.images.get(name) && !ctx.instances.list().some((i) => i.image === name)) await new ImageService(ctx).delete(name);
  },
};
