import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CLI, makeTestEnv, type TestEnv } from '../helpers/env.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { local } from '../../src/exec/exec.js';

/**
 * The exit codes the README promises, from the real CLI (dist/bin/kumo.js, what ships) as a script
 * sees them: 0 ok, 2 bad input, 3 not found, 4 exists/in use, 5 needs a terminal, 6 missing
 * dependency, 7 timed out, 1 anything else. One real case each; only the timeout and the
 * "anything else" need a guest.
 */
let env: TestEnv;

before(async () => {
  env = await makeTestEnv('exit');
  await new ImageService(env.ctx).buildTiny();
});
after(async () => {
  // Pass or fail: the guest, then the test's world (its networks and bridges carry the prefix).
  for (const i of env?.ctx.instances.list() ?? []) await new InstanceService(env.ctx).delete(i.name).catch(() => undefined);
  await env?.cleanup();
});

interface Case { args: string[]; code: number; says: RegExp; path?: string; env?: Record<string, string> }

async function expectExit(c: Case): Promise<void> {
  const label = `kumo ${c.args.join(' ')}`;
  const r = c.path === undefined
    ? await env.cli(c.args, { timeoutMs: 120_000 })
    // node by its full path: the PATH given to the CLI is the point of the case.
    : await local.run(process.execPath, [CLI, ...c.args], { env: { ...env.cliEnv, PATH: c.path, ...(c.env ?? {}) }, allowFailure: true, timeoutMs: 120_000 });
  assert.equal(r.code, c.code, `${label}: exit ${r.code}, stderr: ${r.stderr}`);
  assert.match(c.code === 0 ? r.stdout : r.stderr, c.says, label);
}

test('exit codes without a guest: 0, 2, 3, 4, 5, 6 and 1', async () => {
  const cases: Case[] = [
    { args: ['flavor', 'list'], code: 0, says: /small/ },
    { args: ['instance', 'wait', 'x', '--timeout', 'abc'], code: 2, says: /--timeout must be a whole number/ },
    { args: ['flavor', 'create', 'x', '--vcpus', '1', '--ram', '512'], code: 2, says: /--disk-size/ },
    { args: ['instance', 'show', `${env.prefix}-nope`], code: 3, says: /does not exist/ },
    { args: ['flavor', 'delete', `${env.prefix}nope`], code: 3, says: /does not exist/ },
    { args: ['flavor', 'create', 'small', '--vcpus', '1', '--ram', '512', '--disk-size', '1'], code: 4, says: /flavor "small" already exists/ },
    // Not on a terminal (the test's pipes): the wizard refuses before asking anything.
    { args: ['create'], code: 5, says: /asks its questions in a terminal/ },
    // A PATH without virsh: nothing is uninstalled, the CLI just cannot find it. (Network reads go
    // over libvirt's protocol, which needs no virsh: the way back through virsh is asked for.)
    { args: ['network', 'list'], code: 6, says: /'virsh' is not installed/, path: '/nonexistent', env: { KUMO_LIBVIRT_PROTOCOL: '0' } },
    // A libvirt that does not answer is no code of its own: 1.
    { args: ['host', 'add', `${env.prefix}h`, '--uri', 'qemu+unix:///system?socket=/nonexistent/libvirt-sock'], code: 1, says: /does not answer/ },
  ];
  for (const c of cases) await expectExit(c);
});

test('exit codes with a guest: 0 create, 4 exists and in use, 5 console without a terminal, 7 timed out, 1 stopped while waiting', async () => {
  const name = `${env.prefix}-g`;
  // A host bridge with no DHCP server on it: the guest never gets an address, so a wait times out
  // however fast it boots.
  const lan = `${env.prefix}-lan`;
  await expectExit({ args: ['network', 'create', lan, '--mode', 'bridge', '--bridge', `${env.prefix}lb`.slice(0, 15), '--create-bridge'], code: 0, says: new RegExp(lan) });
  const create = ['instance', 'create', name, '--image', 'tiny', '--flavor', 'small', '--password', 'x', '--network', lan];
  await expectExit({ args: create, code: 0, says: new RegExp(name) });
  await expectExit({ args: create, code: 4, says: /already exists/ });
  await expectExit({ args: ['network', 'delete', lan], code: 4, says: new RegExp(`used by ${name}`) });
  await expectExit({ args: ['instance', 'console', name], code: 5, says: /the serial console needs a terminal/ });
  await expectExit({ args: ['instance', 'wait', name, '--timeout', '2'], code: 7, says: /did not get a DHCP lease within 2 s/ });
  await expectExit({ args: ['instance', 'destroy', name], code: 0, says: /forced off/ });
  await expectExit({ args: ['instance', 'wait', name, '--timeout', '5'], code: 1, says: /is shut off while waiting/ });
  await expectExit({ args: ['instance', 'delete', name], code: 0, says: new RegExp(name) });
  await expectExit({ args: ['network', 'delete', lan], code: 0, says: new RegExp(lan) });
});
