import type { Executor } from '../../../exec/exec.js';
import { readHostFile } from '../../../exec/files.js';
import { KumoError } from '../../../model/errors.js';
import type { WafSystemFiles } from './config.js';

// Debian's ModSecurity and OWASP CRS files, found on the node through its executor.

/** The packages that provide the WAF. */
export const PKG_FIX = 'apt-get install --no-install-recommends nginx-light libnginx-mod-http-modsecurity modsecurity-crs';

/** Where the nginx ModSecurity module may be (kumo version looks for it too). */
export const WAF_MODULE_PATHS = ['/usr/lib/nginx/modules/ngx_http_modsecurity_module.so'];

/** Where Debian's packages put the pieces (bookworm; the first found wins). */
const CANDIDATES = {
  recommended: ['/etc/modsecurity/modsecurity.conf-recommended', '/usr/share/nginx/docs/modsecurity/modsecurity.conf', '/etc/nginx/modsecurity.conf'],
  unicodeMapping: ['/etc/modsecurity/unicode.mapping', '/usr/share/nginx/docs/modsecurity/unicode.mapping', '/etc/nginx/unicode.mapping'],
  module: WAF_MODULE_PATHS,
  crsSetup: ['/etc/modsecurity/crs/crs-setup.conf'],
  crsBefore: ['/etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf'],
  crsAfter: ['/etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf'],
  crsRules: '/usr/share/modsecurity-crs/rules',
};

async function firstReadable(exec: Executor, paths: string[]): Promise<string | undefined> {
  for (const p of paths) {
    if ((await exec.run('test', ['-r', p], { allowFailure: true })).code === 0) return p;
  }
  return undefined;
}

/** Finds Debian's ModSecurity and CRS files on the node. */
export async function discoverWafFiles(exec: Executor): Promise<WafSystemFiles> {
  const need = async (what: string, paths: string[]) => {
    const p = await firstReadable(exec, paths);
    if (!p) throw new KumoError('MISSING_DEPENDENCY', `${what} is missing on ${exec.description} (looked for ${paths.join(', ')})`, PKG_FIX);
    return p;
  };
  const recommendedPath = await need('ModSecurity\'s recommended config', CANDIDATES.recommended);
  const recommended = (await readHostFile(exec, recommendedPath)) ?? '';
  const unicodeMapping = await need('ModSecurity\'s unicode.mapping', CANDIDATES.unicodeMapping);
  const module = await need('the nginx ModSecurity module', CANDIDATES.module);
  const crsSetup = await need('the OWASP CRS setup (crs-setup.conf)', CANDIDATES.crsSetup);
  const crsBefore = await firstReadable(exec, CANDIDATES.crsBefore);
  const crsAfter = await firstReadable(exec, CANDIDATES.crsAfter);
  const found = await exec.run('find', [CANDIDATES.crsRules, '-maxdepth', '1', '-type', 'f', '-name', '*.conf'], { allowFailure: true });
  // REQUEST-9xx before RESPONSE-9xx: the rule files' names are their order.
  const crsRules = found.stdout.split('\n').filter(Boolean).sort();
  if (found.code !== 0 || !crsRules.length) throw new KumoError('MISSING_DEPENDENCY', `the OWASP CRS rules are missing in ${CANDIDATES.crsRules} on ${exec.description}`, PKG_FIX);
  return { recommended, unicodeMapping, module, crsSetup, crsRules, ...(crsBefore ? { crsBefore } : {}), ...(crsAfter ? { crsAfter } : {}) };
}
