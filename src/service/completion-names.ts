import { paths } from '../config.js';
import { namesInStore } from '../store/names.js';
import type { NameKind } from '../model/name-kinds.js';

/**
 * Names for shell completion (`kumo __complete`): the local store only, no libvirt, no network,
 * no recovery, so a TAB stays quick. A store this user cannot read (root's, 0600), a missing one
 * or any other failure gives no names: a completion must never print an error into a shell.
 * Every project's names: root acts in any project, and names are unique across projects.
 */
export function completionNames(kind: NameKind, prefix: string, home?: string): string[] {
  try {
    return namesInStore(paths(home).db, kind, prefix);
  } catch {
    return [];
  }
}
