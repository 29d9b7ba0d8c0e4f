import { invalid } from './errors.js';

/**
 * Names become libvirt domain names, hostnames and file names, so they follow RFC 1123
 * host labels: letters, digits and inner hyphens, at most 63 characters. That rules out
 * `../`, spaces, shell and XML metacharacters by construction.
 */
const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Image names may also carry dots and underscores (`centos-7.8`, `ubuntu_18.04`). */
const IMAGE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

export const NAME_RULE = 'letters, digits and inner hyphens, 1-63 characters (like a hostname)';
export const IMAGE_NAME_RULE = 'letters, digits, and inner ".", "_" or "-", 1-63 characters';

export function checkName(kind: string, name: string): string {
  if (!HOST_LABEL.test(name)) {
    throw invalid(`${kind} name ${JSON.stringify(name)} is not valid: use ${NAME_RULE}`,
      `pick a name such as "web1" or "centos01"`);
  }
  return name;
}

/** Names that never become hostnames (images, snapshots) may carry dots and underscores too. */
export function checkLabel(kind: string, name: string, example: string): string {
  if (!IMAGE_NAME.test(name) || name.includes('..')) {
    throw invalid(`${kind} name ${JSON.stringify(name)} is not valid: use ${IMAGE_NAME_RULE}`, `pick a name such as ${example}`);
  }
  return name;
}

export const checkImageName = (name: string) => checkLabel('image', name, '"centos-7.8" or "ubuntu-18.04"');
