import { spawn, type IPty } from '@lydell/node-pty';
import { sleep } from '../../src/exec/process.js';

/** A program in a real pseudo-terminal, driven the way a person types at it. */
export class Terminal {
  private readonly pty: IPty;
  private out = '';
  readonly exited: Promise<number>;

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv) {
    this.pty = spawn(command, args, { name: 'xterm', cols: 120, rows: 40, env: env as Record<string, string> });
    this.pty.onData((d) => { this.out += d; });
    this.exited = new Promise((resolve) => this.pty.onExit((e) => resolve(e.exitCode)));
  }

  /** Everything printed so far, without colour and cursor escapes. */
  get screen(): string {
    // eslint-disable-next-line no-control-regex
    return this.out.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
  }

  /** Waits until the output (after `from` characters) matches, then returns the new position. */
  async expect(pattern: RegExp, timeoutMs = 30_000, from = 0): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.screen;
      const m = pattern.exec(s.slice(from));
      if (m) return from + m.index + m[0].length;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} in:\n${s.slice(-2000)}`);
      await sleep(50);
    }
  }

  /** Types a line and presses Enter. */
  async answer(text: string): Promise<void> {
    await sleep(100);
    this.pty.write(`${text}\r`);
  }

  write(data: string): void {
    this.pty.write(data);
  }

  kill(): void {
    try { this.pty.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
