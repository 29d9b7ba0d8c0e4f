import { invalid } from './errors.js';
import { FILE_LABEL, HOST_LABEL, isName, mistakableName } from './checks.js';

/**
 * The names of kumo's resources (instances, networks, volumes, ...), refused in kumo's own
 * words: "instance name "x" is not valid: use ...". The rules themselves are in checks.ts. Names
 * libvirt could read as an ID or UUID are refused for every kind: one rule, easy to remember.
 */
export function checkName(kind: string, name: string): string {
  if (!isName(name, HOST_LABEL)) {
    throw invalid(`${kind} name ${JSON.stringify(name)} is not valid: use ${HOST_LABEL.allows}`,
      `pick a name such as "web1" or "centos01"`);
  }
  const mistakable = mistakableName(name);
  if (mistakable) throw invalid(`${kind} name ${JSON.stringify(name)} is not allowed: ${mistakable}`, 'pick a name with a letter in it that is not a UUID, such as "web1" or "vm42"');
  return name;
}

/** Names that never become hostnames (images, snapshots) may carry dots and underscores too. */
export function checkLabel(kind: string, name: string, example: string): string {
  if (!isName(name, FILE_LABEL)) {
    throw invalid(`${kind} name ${JSON.stringify(name)} is not valid: use ${FILE_LABEL.allows}`, `pick a name such as ${example}`);
  }
  return name;
}

export const checkImageName = (name: string) => checkLabel('image', name, '"centos-7.8" or "ubuntu-18.04"');
