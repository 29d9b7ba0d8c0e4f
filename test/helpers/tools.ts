import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { local } from '../../src/exec/exec.js';

/** Runs an external validator on a document; returns its verdict and what it said. */
export async function validateWith(tool: string, args: (file: string) => string[], body: string, name = 'doc.xml') {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-validate-'));
  try {
    const file = join(dir, name);
    await writeFile(file, body);
    const r = await local.run(tool, args(file), { allowFailure: true });
    return { ok: r.code === 0, output: `${r.stdout}${r.stderr}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export { virtXmlValidate } from '../../src/drivers/libvirt/validate.js';

export const cloudInitSchema = (userData: string) =>
  validateWith('cloud-init', (f) => ['schema', '-c', f], userData, 'user-data');
