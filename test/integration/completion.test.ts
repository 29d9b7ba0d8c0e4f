import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { local } from '../../src/exec/exec.js';
import { which } from '../../src/drivers/host/which.js';
import { freeSubnet, makeTestEnv, runCli, type TestEnv, CLI } from '../helpers/env.js';

/**
 * Shell completion in real shells and the manual pages in real man (issue 19): the scripts
 * `kumo completion bash|zsh` print, sourced by bash and zsh, offer kumo's commands and options
 * and the live names of a per-run store seeded through kumo; every page of dist/man renders
 * without a warning. Records only: no guest boots.
 */

const MAN_DIR = join(import.meta.dirname, '../../man');
let env: TestEnv;
let bin: string;
let web1: string, web2: string, db1: string;
const scripts: { bash?: string; zsh?: string } = {};

before(async () => {
  env = await makeTestEnv('cmp');
  const p = env.prefix;
  [web1, web2, db1] = [`${p}-web1`, `${p}-web2`, `${p}-db1`];
  // The shells run `kumo` as a user would: from PATH.
  bin = join(env.home, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'kumo'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`);
  await chmod(join(bin, 'kumo'), 0o755);
  // Records made through kumo; instances as records only (a guest would take minutes under TCG).
  const third = await freeSubnet();
  for (const args of [
    ['flavor', 'create', `${p}-f1`, '--vcpus', '1', '--ram', '256', '--disk-size', '1'],
    ['project', 'create', `${p}-pr`],
    ['volume', 'create', `${p}-v1`, '--size', '1'],
    ['network', 'create', `${p}-n1`, '--mode', 'isolated', '--cidr', `192.168.${third}.0/24`, '--bridge', `${p}n`],
  ]) {
    const r = await env.cli(args);
    assert.equal(r.code, 0, `kumo ${args.join(' ')}: ${r.stderr}`);
  }
  const now = new Date().toISOString();
  env.ctx.images.upsert({ name: `${p}-img`, os: 'stand-in', disk: join(env.home, 'none.qcow2'), format: 'qcow2', virtualSizeBytes: 1 << 26, source: 'test', createdAt: now });
  for (const name of [web1, web2, db1]) {
    env.ctx.instances.insert({ name, uuid: randomUUID(), host: 'local', image: `${p}-img`, vcpus: 1, ramMiB: 64, diskGiB: 1, networks: [], nics: [], dataDisks: [], sshKeys: [], createdAt: now, project: 'default' });
  }
  for (const shell of ['bash', 'zsh'] as const) {
    const r = await env.cli(['completion', shell]);
    assert.equal(r.code, 0, r.stderr);
    scripts[shell] = join(env.home, `kumo.${shell}`);
    await writeFile(scripts[shell], r.stdout);
  }
});

after(async () => {
  await env?.cleanup();
});

const shellEnv = () => ({ ...env.cliEnv, PATH: `${bin}:${env.cliEnv.PATH ?? '/usr/bin:/bin'}` });

/** What bash's completion function offers for the command line `words` (the last is the word being completed). */
async function bashOffers(words: string[], opts: { asNobody?: boolean } = {}): Promise<{ offers: string[]; stderr: string }> {
  const program = `source ${JSON.stringify(scripts.bash!)}; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _kumo; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const [cmd, args] = opts.asNobody
    ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', '--norc', '--noprofile', '-c', program, 'bash', ...words]]
    : ['bash', ['--norc', '--noprofile', '-c', program, 'bash', ...words]];
  const r = await local.run(cmd, args as string[], { env: shellEnv(), timeoutMs: 30_000 });
  return { offers: r.stdout.split('\n').filter(Boolean).sort(), stderr: r.stderr };
}

/**
 * The same in zsh. compadd only works inside a completion widget, so it is replaced by a function
 * that records what it is given; the script filters by the typed prefix itself, as compadd would.
 */
async function zshOffers(words: string[]): Promise<string[]> {
  const program = `compadd() { [[ $1 == -- ]] && shift; reply+=("$@"); }; _files() { reply+=(FILES); }
source ${JSON.stringify(scripts.zsh!)} 2>/dev/null; words=("$@"); CURRENT=$#; reply=(); _kumo; print -rl -- $reply`;
  const r = await local.run('zsh', ['-f', '-c', program, 'zsh', ...words], { env: shellEnv(), timeoutMs: 30_000 });
  return r.stdout.split('\n').filter(Boolean).sort();
}

/** The cases both shells answer alike: [words, what is offered]. */
const cases = (): [string[], string[]][] => {
  const p = env.prefix;
  return [
    [['kumo', 'instance', 'sh'], ['show']],
    [['kumo', 'instance', 'show', `${p}-w`], [web1, web2]],
    [['kumo', 'instance', 'start', web1, `${p}-`], [db1, web1, web2]],
    [['kumo', 'volume', 'attach', `${p}-v`], [`${p}-v1`]],
    [['kumo', 'volume', 'attach', `${p}-v1`, `${p}-d`], [db1]],
    [['kumo', 'instance', 'create', 'x', '--image', ''], [`${p}-img`]],
    [['kumo', 'instance', 'create', 'x', '--flavor', `${p}`], [`${p}-f1`]],
    [['kumo', 'instance', 'create', 'x', '--network', `${p}`], [`${p}-n1`]],
    [['kumo', 'instance', 'create', 'x', '--console', 's'], ['serial']],
    [['kumo', 'instance', 'create', 'x', '--wait-f'], ['--wait-for']],
    [['kumo', '--project', `${p}`], [`${p}-pr`]],
    [['kumo', 'host', 'show', 'lo'], ['local']],
    [['kumo', 'vers'], ['version']],
  ];
};

test('bash: `kumo instance sh<TAB>` gives show, `kumo instance show w<TAB>` the instances beginning so, and so on', async () => {
  // Side by side: each case is a shell of its own.
  const answers = await Promise.all(cases().map(async ([words, want]) => ({ words, want, ...(await bashOffers(words)) })));
  for (const { words, want, offers, stderr } of answers) {
    assert.deepEqual(offers, want, words.join(' '));
    assert.equal(stderr, '', words.join(' '));
  }
});

test('zsh: the same offers', async (t) => {
  if (!which('zsh')) return t.skip('zsh is not installed (scripts/bootstrap.sh --test installs it)');
  const answers = await Promise.all(cases().map(async ([words, want]) => ({ words, want, offers: await zshOffers(words) })));
  for (const { words, want, offers } of answers) assert.deepEqual(offers, want, words.join(' '));
});

test('a user who cannot read the store gets no names and no error, in the shell or from __complete', async () => {
  const r = await local.run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, '__complete', 'instance', ''],
    { env: env.cliEnv, allowFailure: true });
  assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', '']);
  const { offers, stderr } = await bashOffers(['kumo', 'instance', 'show', `${env.prefix}-w`], { asNobody: true });
  assert.deepEqual(offers, []);
  assert.equal(stderr, '');
  // Commands still complete: they come from the script.
  assert.deepEqual((await bashOffers(['kumo', 'instance', 'sh'], { asNobody: true })).offers, ['show']);
});

test('__complete reads the store only: no store, no names, and none made', async () => {
  const home = join(env.home, 'empty-home');
  const r = await runCli(['__complete', 'instance', ''], { env: { ...env.cliEnv, KUMO_HOME: home }, allowFailure: true });
  assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', '']);
  assert.equal(existsSync(home), false, 'no KUMO_HOME was made');
});

test('every manual page renders without a warning, with its NAME, SYNOPSIS and options', async (t) => {
  if (!which('groff') || !which('man')) return t.skip('groff and man are not installed (groff-base and man-db: scripts/bootstrap.sh --test)');
  const pages = readdirSync(MAN_DIR).filter((f) => f.endsWith('.1')).sort();
  assert.ok(pages.includes('kumo.1') && pages.includes('kumo-instance.1'), `the build made the pages (npm run build): ${pages.join(' ')}`);
  // groff with every warning on, as man would run it: what it says on stderr is a warning.
  const rendered = await Promise.all(pages.map(async (page) => ({ page, ...(await local.run('groff', ['-man', '-ww', '-Tutf8', join(MAN_DIR, page)], { allowFailure: true, env: { ...process.env, LANG: 'C.UTF-8' } })) })));
  for (const r of rendered) {
    assert.deepEqual([r.code, r.stderr], [0, ''], `${r.page}: groff's warnings`);
    const text = r.stdout.replace(/.\x08/g, '');
    assert.match(text, /^NAME\n {7}kumo/m, r.page);
    assert.match(text, /^SYNOPSIS\n {7}kumo/m, r.page);
  }
  // And as a reader gets them: man -l.
  const man = async (page: string) => (await local.run('man', ['-l', join(MAN_DIR, page)], { env: { ...process.env, MANWIDTH: '100', LANG: 'C.UTF-8', MANPAGER: 'cat', PAGER: 'cat' } })).stdout;
  const instance = await man('kumo-instance.1');
  assert.match(instance, /kumo instance create \[options\] <name>/);
  assert.match(instance, /--image <name>\n\s+image to start from/);
  const main = await man('kumo.1');
  assert.match(main, /--project <name>/);
  assert.match(main, /kumo-instance\(1\)/);
});

test('kumo --version and kumo version: the build\'s version and commit, then what this machine has', async () => {
  const short = await env.cli(['--version']);
  assert.match(short.stdout, /^\d+\.\d+\.\d+ \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)\n$/);
  const r = await env.cli(['version', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout) as { kumo: { version: string; commit: string }; components: { name: string; version?: string; detail?: string }[] };
  assert.equal(`${v.kumo.version} (commit ${v.kumo.commit})\n`, short.stdout);
  const names = v.components.map((c) => c.name);
  assert.deepEqual(names, ['libvirt library', 'libvirt daemon', 'QEMU', 'HAProxy', 'nginx', 'nginx ModSecurity module', 'ModSecurity library', 'nfs-ganesha']);
  // This machine runs libvirtd and has QEMU (the suite's set-up installs them all).
  for (const c of v.components) assert.match(c.version ?? '', /^\d/, `${c.name}: ${c.detail ?? ''}`);
  // A tool that is not there is said so, not an error: a PATH with nothing on it (QEMU is in /usr/bin).
  const bare = await local.run(process.execPath, [CLI, 'version', '--json'], { env: { ...env.cliEnv, PATH: join(env.home, 'no-tools') }, allowFailure: true });
  assert.equal(bare.code, 0, bare.stderr);
  const missing = (JSON.parse(bare.stdout) as typeof v).components.find((c) => c.name === 'QEMU');
  assert.deepEqual(missing, { name: 'QEMU', detail: 'not installed' });
});
