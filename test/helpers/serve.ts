import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI, waitFor } from './env.js';

/** A `kumo serve` a test started: its process, its address, what it printed so far. */
export interface ServeProcess {
  child: ChildProcess;
  url: string;
  /** stdout lines (the address last; the admin token line before it on a first start). */
  lines: string[];
  stderr(): string;
}

/**
 * Starts the real CLI's `kumo serve --port 0 ARGS` with `env` and waits until it says where it
 * listens. The caller ends it (SIGTERM to see it stop, or SIGKILL in cleanup).
 */
export async function startServe(env: NodeJS.ProcessEnv, args: string[] = []): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d; });
  try {
    const url = await waitFor('kumo serve to listen', async () => {
      if (child.exitCode !== null) throw new Error(`kumo serve exited ${child.exitCode}: ${stderr}`);
      return /kumo API on (http:\/\/127\.0\.0\.1:\d+)\/api\/v1/.exec(lines.join('\n'))?.[1];
    }, 60_000);
    return { child, url, lines, stderr: () => stderr };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}
