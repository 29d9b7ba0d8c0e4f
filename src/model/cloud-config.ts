/**
 * The shape of the cloud-config keys kumo merges and guests commonly use, checked before a
 * seed is written: a wrong shape is not refused by anything on the way, the guest's cloud-init
 * skips it, and the instance never becomes ready. Other keys are cloud-init's to judge.
 */

/** Where in the cloud-config a problem is (keys and list positions), and what is wrong. */
export interface CloudConfigProblem {
  path: (string | number)[];
  message: string;
}

/** Keys whose value is a list (kumo joins its own entries with the user's). */
export const CLOUD_CONFIG_LIST_KEYS = ['users', 'runcmd', 'bootcmd', 'write_files', 'ssh_authorized_keys', 'packages', 'mounts'] as const;

const isString = (v: unknown): v is string => typeof v === 'string';
/** A command as runcmd and bootcmd take it: a shell line, or a list of its words (run without a shell). */
const isCommand = (v: unknown) => isString(v) || (Array.isArray(v) && v.length > 0 && v.every(isString));
const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What each list key's items must be: undefined when the item is right, else what it should be. */
const ITEM_RULES: Partial<Record<string, (item: unknown) => string | undefined>> = {
  runcmd: (i) => (isCommand(i) ? undefined : 'a runcmd entry is a command line or a list of its words (strings)'),
  bootcmd: (i) => (isCommand(i) ? undefined : 'a bootcmd entry is a command line or a list of its words (strings)'),
  packages: (i) => (isString(i) || (Array.isArray(i) && i.length === 2 && i.every(isString)) ? undefined : 'a package is a name, or [name, version]'),
  ssh_authorized_keys: (i) => (isString(i) ? undefined : 'an authorized key is a string (a .pub file\'s line)'),
  mounts: (i) => (Array.isArray(i) && i.length >= 1 && i.length <= 6 && i.every(isString) ? undefined : 'a mount is a list of 1 to 6 fstab fields (strings)'),
};

/** write_files: each a mapping with a path and (string) content, its other settings of their own types. */
function writeFileProblems(item: unknown, path: (string | number)[]): CloudConfigProblem[] {
  if (!isMapping(item)) return [{ path, message: 'a write_files entry is a mapping with path and content' }];
  const out: CloudConfigProblem[] = [];
  if (!isString(item.path) || !item.path.startsWith('/')) out.push({ path: [...path, 'path'], message: 'path must be an absolute path (a string)' });
  // permissions stays out: cloud-init takes 0644 unquoted too, which YAML reads as a number.
  for (const key of ['content', 'owner', 'encoding']) {
    if (item[key] !== undefined && !isString(item[key])) out.push({ path: [...path, key], message: `${key} must be a string` });
  }
  for (const key of ['append', 'defer']) {
    if (item[key] !== undefined && typeof item[key] !== 'boolean') out.push({ path: [...path, key], message: `${key} must be true or false` });
  }
  return out;
}

/** Every problem of a cloud-config's common keys (none: nothing kumo knows to be wrong). */
export function cloudConfigProblems(doc: Record<string, unknown>): CloudConfigProblem[] {
  const out: CloudConfigProblem[] = [];
  for (const key of CLOUD_CONFIG_LIST_KEYS) {
    const value = doc[key];
    if (value === undefined) continue;
    if (!Array.isArray(value)) {
      out.push({ path: [key], message: `${key} must be a list` });
      continue;
    }
    value.forEach((item: unknown, k) => {
      if (key === 'write_files') { out.push(...writeFileProblems(item, [key, k])); return; }
      const wrong = ITEM_RULES[key]?.(item);
      if (wrong) out.push({ path: [key, k], message: wrong });
    });
  }
  return out;
}
