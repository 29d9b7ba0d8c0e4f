import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';

/** How Executor.open() starts a long-lived process. */
export interface OpenOptions {
  env?: NodeJS.ProcessEnv;
  /** Run it in a pseudo-terminal of this size, for programs that need a TTY (virsh console). */
  pty?: { cols: number; rows: number; term?: string };
}

/** How an opened process ended. */
export interface ProcessExit {
  /** null when a signal ended it or it could not start. */
  code: number | null;
  signal: string | null;
  /** The start of what it wrote to stderr until then (in a pty, stderr is the terminal: empty). */
  stderr: string;
}

/** A long-lived process started by Executor.open(); its caller ends it. */
export interface OpenedProcess {
  readonly pid: number | undefined;
  /** Its stdin and stdout (in a pty: the terminal) as one byte stream. Destroying it ends the process. */
  readonly stream: Duplex;
  /** Settles once, when the process has ended; never rejects. */
  readonly exit: Promise<ProcessExit>;
  /** Sends a signal (default SIGTERM); a process that is gone already is left alone. */
  kill(signal?: NodeJS.Signals): void;
  /** A new terminal size; nothing without a pty. */
  resize(cols: number, rows: number): void;
}

/** Enough of stderr to say why a process failed, without keeping a chatty one's output. */
const STDERR_KEPT = 64 * 1024;

/** Starts a process on this machine; the other executors wrap their command line and come here. */
export async function openLocal(command: string, args: readonly string[], options: OpenOptions = {}): Promise<OpenedProcess> {
  if (options.pty) return openPty(command, args, options.pty, options.env);
  const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  // Duplex.from pairs a readable and a writable into one stream (Node 16.8+).
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => { if (stderr.length < STDERR_KEPT) stderr += c.toString(); });
  const exit = new Promise<ProcessExit>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, stderr }));
    child.on('error', (e) => {
      stream.destroy(e);
      resolve({ code: null, signal: null, stderr });
    });
  });
  stream.on('close', () => { if (child.exitCode === null) child.kill('SIGTERM'); });
  return { pid: child.pid, stream, exit, kill: (signal) => { child.kill(signal); }, resize: () => undefined };
}

/**
 * The process in a pseudo-terminal. node-pty is loaded only here: a native module that every
 * CLI run need not load. Its text is UTF-8 both ways, as a terminal's is.
 */
async function openPty(command: string, args: readonly string[], size: NonNullable<OpenOptions['pty']>, env: NodeJS.ProcessEnv | undefined): Promise<OpenedProcess> {
  const { spawn: spawnPty } = await import('@lydell/node-pty');
  const term = size.term ?? 'xterm-256color';
  const pty = spawnPty(command, [...args], {
    name: term, cols: size.cols, rows: size.rows, env: { ...(env ?? process.env), TERM: term } as Record<string, string>,
  });
  let exited = false;
  const kill = (signal?: NodeJS.Signals) => {
    if (exited) return;
    try { pty.kill(signal); } catch { /* gone already */ }
  };
  const stream = new Duplex({
    // The terminal's output is pushed as it comes; a full buffer pauses the terminal until read again.
    read: () => { if (!exited) pty.resume(); },
    write: (chunk: Buffer, _encoding, done) => {
      pty.write(chunk.toString('utf8'));
      done();
    },
    destroy: (err, done) => {
      kill('SIGHUP'); // what closing a terminal does
      done(err);
    },
  });
  pty.onData((text) => { if (!exited && !stream.push(Buffer.from(text, 'utf8'))) pty.pause(); });
  const exit = new Promise<ProcessExit>((resolve) => pty.onExit(({ exitCode, signal }) => {
    exited = true;
    stream.push(null);
    resolve({ code: exitCode, signal: signal ? String(signal) : null, stderr: '' });
  }));
  return { pid: pty.pid, stream, exit, kill, resize: (cols, rows) => { if (!exited) pty.resize(cols, rows); } };
}
