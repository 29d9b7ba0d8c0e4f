import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Executor, RunOptions, RunResult } from '../../exec/exec.js';
import { KumoError } from '../../model/errors.js';

/** The path of an executable on PATH (plus the sbin folders root uses), or undefined. */
export function which(tool: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    const file = join(dir, tool);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The tools of `toolPackages` (tool → the Debian package that has it) missing on this machine. */
export function missingTools(toolPackages: Readonly<Record<string, string>>): { tool: string; package: string }[] {
  return Object.entries(toolPackages).filter(([tool]) => !which(tool)).map(([tool, pkg]) => ({ tool, package: pkg }));
}

/**
 * Runs a command on a host whose PATH kumo cannot look at (a namespace, ssh): the executors
 * report a program that is not there as MISSING_DEPENDENCY naming the bare command; this
 * says what it is (`says`, e.g. "HAProxy is not installed on ssh kvm1") and how to install it.
 */
export async function runTool(exec: Executor, command: string, args: readonly string[], options: RunOptions,
  missing: { says: string; fix: string }): Promise<RunResult> {
  try {
    return await exec.run(command, args, options);
  } catch (e) {
    if (e instanceof KumoError && e.code === 'MISSING_DEPENDENCY') throw new KumoError('MISSING_DEPENDENCY', missing.says, missing.fix);
    throw e;
  }
}

/** The tools not on a host's PATH (sbin included: mke2fs, resize2fs and losetup live there). */
export async function missingToolsOn(exec: Executor, tools: string[]): Promise<string[]> {
  const r = await exec.run('sh', ['-c', 'for t; do command -v "$t" >/dev/null 2>&1 || echo "$t"; done', 'sh', ...tools],
    { env: { ...process.env, PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin` } });
  return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
}

/**
 * Fails naming the missing tools and the Debian packages that bring them.
 * `purpose` starts the message: "building the tiny guest image" needs ...
 */
export async function requireTools(exec: Executor, purpose: string, toolPackages: Record<string, string>): Promise<void> {
  const missing = await missingToolsOn(exec, Object.keys(toolPackages));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((t) => toolPackages[t] ?? t))];
  throw new KumoError('MISSING_DEPENDENCY',
    `${purpose} needs ${missing.join(', ')} (Debian package${pkgs.length > 1 ? 's' : ''} ${pkgs.join(', ')})`,
    `apt-get install --no-install-recommends ${pkgs.join(' ')}`);
}
