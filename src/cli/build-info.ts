import { kumoVersion } from '../config.js';

/**
 * What this CLI was built from. The bundle (scripts/build-cli.mjs) has both written in by
 * esbuild's `define`, so `kumo --version` reads no file; the file-by-file build (tsc, for tests)
 * has neither and reads package.json, with the commit "unknown".
 */
declare const KUMO_BUILD_VERSION: string | undefined;
declare const KUMO_BUILD_COMMIT: string | undefined;

export interface BuildInfo {
  version: string;
  /** The git commit (12 hex digits, `-dirty` when the tree had changes), or "unknown" outside git. */
  commit: string;
}

export function buildInfo(): BuildInfo {
  const version = typeof KUMO_BUILD_VERSION === 'string' ? KUMO_BUILD_VERSION : kumoVersion();
  const commit = typeof KUMO_BUILD_COMMIT === 'string' ? KUMO_BUILD_COMMIT : 'unknown';
  return { version, commit };
}

/** `kumo --version`'s line: the version first, so `kumo --version | cut -d' ' -f1` is the number. */
export const versionLine = (b: BuildInfo = buildInfo()): string => `${b.version} (commit ${b.commit})`;
