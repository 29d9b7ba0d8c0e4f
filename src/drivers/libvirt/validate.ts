import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Executor, local } from '../../exec/exec.js';

/** Checks a libvirt XML document against libvirt's own schemas (virt-xml-validate). */
export async function virtXmlValidate(xml: string, kind: 'domain' | 'network' | 'domainsnapshot' | 'pool' | 'volume',
  exec: Executor = local): Promise<{ ok: boolean; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-validate-'));
  try {
    const file = join(dir, `${kind}.xml`);
    await writeFile(file, xml);
    const r = await exec.run('virt-xml-validate', [file, kind], { allowFailure: true });
    return { ok: r.code === 0, output: `${r.stdout}${r.stderr}`.trim() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
