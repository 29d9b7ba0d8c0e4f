import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { which } from '../../src/drivers/host/which.js';

/**
 * The real OpenStack clients as tests run them: Debian's `openstack` command
 * (python3-openstackclient) and openstacksdk through test/helpers/openstack-sdk.py. Each run
 * gets only the OS_* variables of the credentials it is given, a HOME of its own (no
 * ~/.config/openstack/clouds.yaml of the machine's) and no proxy: the caller's OS_* never leak in.
 * A failure names the command and shows what it printed.
 */

/** How a client authenticates: a kumo user's password, a kumo API token as application credential, or a clouds.yaml. */
export type OsCredentials =
  | { kind: 'password'; authUrl: string; username: string; password: string; project: string }
  | { kind: 'application-credential'; authUrl: string; id: string; secret: string }
  | { kind: 'clouds-yaml'; file: string; cloud: string };

export const OPENSTACK_PACKAGES = 'python3-openstackclient and python3-openstacksdk (scripts/bootstrap.sh --test)';

/** Why the clients cannot run here, or undefined: they can. A test skips with it, which fails the test command (skip policy). */
export function openStackClientsMissing(): string | undefined {
  if (!which('openstack')) return `the openstack command is not installed: ${OPENSTACK_PACKAGES}`;
  return undefined;
}

/**
 * The Python the clients are installed for: the one the `openstack` script names (Debian's
 * /usr/bin/python3). A python3 found first on PATH (pyenv, a virtualenv) may lack openstacksdk.
 */
export function clientsPython(): string {
  const script = which('openstack');
  const shebang = script ? /^#!\s*(\S+)/.exec(readFileSync(script, 'utf8').split('\n', 1)[0] ?? '')?.[1] : undefined;
  return shebang && !shebang.endsWith('/env') ? shebang : 'python3';
}

/** The environment a client runs in: PATH, a locale, a private HOME, and the credentials' OS_* variables only. */
export function clientEnv(creds: OsCredentials, home: string): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', PYTHONDONTWRITEBYTECODE: '1' };
  switch (creds.kind) {
    case 'password':
      return {
        ...base, OS_AUTH_TYPE: 'password', OS_AUTH_URL: creds.authUrl, OS_USERNAME: creds.username, OS_PASSWORD: creds.password,
        OS_PROJECT_NAME: creds.project, OS_USER_DOMAIN_NAME: 'Default', OS_PROJECT_DOMAIN_NAME: 'Default', OS_IDENTITY_API_VERSION: '3',
      };
    case 'application-credential':
      return {
        ...base, OS_AUTH_TYPE: 'v3applicationcredential', OS_AUTH_URL: creds.authUrl,
        OS_APPLICATION_CREDENTIAL_ID: creds.id, OS_APPLICATION_CREDENTIAL_SECRET: creds.secret, OS_IDENTITY_API_VERSION: '3',
      };
    case 'clouds-yaml':
      return { ...base, OS_CLIENT_CONFIG_FILE: creds.file, OS_CLOUD: creds.cloud };
  }
}

export interface ClientResult { code: number; stdout: string; stderr: string }

/** The last lines of a client's output: enough to see its error (or --debug's last requests). */
const tail = (text: string, lines = 40) => text.trimEnd().split('\n').slice(-lines).join('\n');

/** Runs `command args` in `env`, with `input` on stdin, killed after `timeoutMs`; never throws on an exit code. */
function runClient(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, input = ''): Promise<ClientResult & { timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => { stdout += b; });
    child.stderr.on('data', (b: Buffer) => { stderr += b; });
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`${command} could not start: ${e.message}; install ${OPENSTACK_PACKAGES}`)); });
    child.stdin.on('error', () => undefined); // a client that exits early closes its stdin
    child.stdin.end(input);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code: code ?? 128, stdout, stderr, timedOut }); });
  });
}

/** The failure of a client run: the command as typed, how it ended, and what it printed. */
function clientFailure(what: string, r: ClientResult & { timedOut: boolean }, timeoutMs: number, expected: string): Error {
  const end = r.timedOut ? `did not finish within ${timeoutMs / 1000} s` : `exited ${r.code} (expected ${expected})`;
  return new Error(`${what} ${end}\n--- stderr ---\n${tail(r.stderr) || '(nothing)'}\n--- stdout ---\n${tail(r.stdout, 20) || '(nothing)'}`);
}

/** KUMO_TEST_OS_DEBUG=1 adds --debug to every `openstack` run: its requests and answers then show in a failure. */
const debug = () => process.env.KUMO_TEST_OS_DEBUG === '1';

/** The `openstack` command with one set of credentials. make() gives it a private HOME; close() removes it. */
export class OpenStackCli {
  private constructor(readonly creds: OsCredentials, private readonly home: string) {}

  static async make(creds: OsCredentials): Promise<OpenStackCli> {
    return new OpenStackCli(creds, await mkdtemp(join(tmpdir(), 'kumo-os-client-')));
  }

  /** The same client with other credentials, sharing the HOME. */
  as(creds: OsCredentials): OpenStackCli {
    return new OpenStackCli(creds, this.home);
  }

  get env(): NodeJS.ProcessEnv {
    return clientEnv(this.creds, this.home);
  }

  /** `openstack ARGS`; `code` is the exit code expected (0 unless said), anything else fails with the command and its stderr. */
  async run(args: string[], opts: { timeoutMs?: number; code?: number } = {}): Promise<ClientResult> {
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const full = debug() ? ['--debug', ...args] : args;
    const r = await runClient('openstack', full, this.env, timeoutMs);
    const expected = opts.code ?? 0;
    if (r.timedOut || r.code !== expected) throw clientFailure(`openstack ${args.join(' ')}`, r, timeoutMs, String(expected));
    return r;
  }

  /** `openstack ARGS -f json`, parsed (from its first line that opens JSON: `--wait` prints its progress before it). */
  async json<T = Record<string, unknown>>(args: string[], opts: { timeoutMs?: number } = {}): Promise<T> {
    const r = await this.run([...args, '-f', 'json'], opts);
    try {
      return JSON.parse(r.stdout.slice(Math.max(0, r.stdout.search(/^[[{]/m)))) as T;
    } catch {
      throw new Error(`openstack ${args.join(' ')} -f json printed no JSON:\n${tail(r.stdout)}\n--- stderr ---\n${tail(r.stderr)}`);
    }
  }

  async close(): Promise<void> {
    await rm(this.home, { recursive: true, force: true });
  }
}

/** One step of an openstacksdk plan; test/helpers/openstack-sdk.py says what each does. */
export type SdkStep =
  | { do: 'token' }
  | { do: 'flavors' }
  | { do: 'images' }
  | { do: 'create_server'; name: string; image: string; flavor: string; network: string; user_data?: string; wait: number }
  | { do: 'show_server'; name: string }
  | { do: 'list_servers' }
  | { do: 'create_volume'; name: string; size: number; wait: number }
  | { do: 'attach_volume'; server: string; volume: string; wait: number }
  | { do: 'detach_volume'; server: string; volume: string; wait: number }
  | { do: 'delete_volume'; name: string; wait: number }
  | { do: 'delete_server'; name: string; wait: number };

/** A step's answer: what it did, as JSON (fields per step in openstack-sdk.py). */
export type SdkResult = { do: string } & Record<string, unknown>;

/** The script beside this file's source (the build does not copy .py files into dist). */
export const SDK_SCRIPT = join(import.meta.dirname, '../../../test/helpers/openstack-sdk.py');

/**
 * Runs `steps` through openstacksdk (one connection, in order) with `cli`'s credentials and
 * private HOME; returns each step's result. A failing step fails with its name, the error the SDK
 * raised, and the results of the steps before it.
 */
export async function runSdk(cli: OpenStackCli, steps: SdkStep[], timeoutMs = 300_000): Promise<SdkResult[]> {
  const r = await runClient(clientsPython(), [SDK_SCRIPT], cli.env, timeoutMs, JSON.stringify({ steps }));
  const what = `openstacksdk (${steps.map((s) => s.do).join(', ')})`;
  let out: { results?: SdkResult[]; error?: { step: number; do: string; type: string; message: string } } | undefined;
  try { out = JSON.parse(r.stdout); } catch { /* said below with the output */ }
  if (out?.error) {
    throw new Error(`${what}: step ${out.error.step + 1} (${out.error.do}) raised ${out.error.type}: ${out.error.message}\n` +
      `--- results before it ---\n${JSON.stringify(out.results ?? [])}\n--- stderr ---\n${tail(r.stderr)}`);
  }
  if (r.timedOut || r.code !== 0 || !out?.results) throw clientFailure(what, r, timeoutMs, '0 and JSON results');
  return out.results;
}
