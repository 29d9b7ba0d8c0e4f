import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { parse } from 'yaml';
import { MAX_YAML_DEPTH, readYaml, YAML_BYTE_LIMITS } from '../../src/model/yaml-input.js';
import { parseYamlFile } from '../../src/model/yaml-file.js';
import { DatacenterSchema } from '../../src/model/datacenter.js';
import { buildSeed, parseUserData } from '../../src/drivers/image/seed.js';
import { KumoError, publicError } from '../../src/model/errors.js';
import { OperationRegistry } from '../../src/service/operations.js';
import { SettingsService } from '../../src/service/settings.js';
import { AuditService } from '../../src/service/audit.js';
import { openContext, type Context } from '../../src/service/context.js';

/**
 * Attack tests of issue 14 (hostile input, safe errors, limits, audit) that need no server:
 * each one failed on the code before the fix (see docs/decisions.md, "Trust: input, errors,
 * limits, audit"); test/integration/attack-input.test.ts holds the same through the API.
 */

let home: string;
let ctx: Context;
before(async () => {
  home = await mkdtemp('/tmp/kumo-unit-attack-');
  ctx = openContext({ home });
});
after(async () => {
  ctx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

const refusedAs = (pattern: RegExp) => (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && pattern.test(e.message);
/** An operation's owner: a token's name, in the default project. */
const by = (name: string) => ({ name, project: 'default' });

test('2 KB of nested YAML, read twice, is refused twice (it aborted Node the second time: the composer recursed per level)', () => {
  for (const deep of ['['.repeat(2000), 'a: {'.repeat(500), '- '.repeat(1000), '? '.repeat(1000)]) {
    for (let i = 0; i < 2; i++) {
      assert.throws(() => parseYamlFile(deep, DatacenterSchema, 'dc.yaml', 'datacenter'), refusedAs(/nests deeper than 64 levels/));
      assert.throws(() => parseUserData(`#cloud-config\nx: ${deep}`), refusedAs(/nests deeper than 64 levels|not valid YAML/));
    }
  }
  // 64 levels are fine; 65 are not.
  const nested = (n: number) => `x: ${'['.repeat(n - 1)}${']'.repeat(n - 1)}`;
  assert.doesNotThrow(() => readYaml(nested(MAX_YAML_DEPTH), { kind: 'userData', what: 'user-data' }));
  assert.throws(() => readYaml(nested(MAX_YAML_DEPTH + 1), { kind: 'userData', what: 'user-data' }), refusedAs(/line 1, column/));
});

test('YAML over its kind\'s byte cap is refused before parsing (a 1 MiB list held the event loop for seconds)', () => {
  let list = 'name: x\ninstances:\n';
  while (list.length < 1024 * 1024) list += '  - abcdefgh\n';
  assert.throws(() => parseYamlFile(list, DatacenterSchema, 'dc.yaml', 'datacenter'), refusedAs(new RegExp(`at most ${YAML_BYTE_LIMITS.datacenter} bytes`)));
  assert.throws(() => parseUserData(`#cloud-config\nruncmd:\n${list}`), refusedAs(/user-data is \d+ bytes/));
  // Counted in bytes, not characters: 30 000 three-byte characters are 90 000 bytes.
  assert.throws(() => parseUserData(`#cloud-config\nx: "${'가'.repeat(30_000)}"`), refusedAs(/at most 65536 bytes/));
});

test('an alias bomb is refused as invalid input, not a crash or an internal error', () => {
  const bomb = ['#cloud-config', 'a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefghij'.split('').map((c, i) => `${c}: &${c} [${Array(10).fill(`*${'abcdefghij'[i]}`).join(', ')}]`)].join('\n');
  assert.throws(() => parseUserData(bomb), refusedAs(/not valid YAML/));
  assert.throws(() => parseYamlFile(bomb.replace('#cloud-config', 'name: x'), DatacenterSchema, 'dc.yaml', 'datacenter'), refusedAs(/dc\.yaml/));
});

test('seed YAML quotes what YAML 1.1 (cloud-init\'s PyYAML) would read as booleans: on, yes, no, off, y stay strings', () => {
  for (const word of ['on', 'yes', 'no', 'off', 'y', 'n', 'true', 'Off']) {
    const seed = buildSeed({ instanceId: word, hostname: word, rootPasswordHash: word, sshKeys: [], nics: [{ mac: '52:54:00:21:31:01' }],
      userData: `#cloud-config\nruncmd: ["${word}"]\nbootcmd: ['${word}']\n` });
    const ud = parse(seed['user-data'], { version: '1.1' }) as Record<string, unknown>;
    const meta = parse(seed['meta-data'], { version: '1.1' }) as Record<string, unknown>;
    const net = parse(seed['network-config'], { version: '1.1' }) as { ethernets: { nic0: { match: { macaddress: unknown } } } };
    assert.equal(ud.hostname, word);
    assert.deepEqual(ud.runcmd, [word]);
    assert.deepEqual(ud.bootcmd, [word]);
    assert.equal((ud.users as Record<string, unknown>[])[1]!.hashed_passwd, word);
    assert.deepEqual([meta['instance-id'], meta['local-hostname']], [word, word]);
    assert.equal(net.ethernets.nic0.match.macaddress, '52:54:00:21:31:01', 'not a base-60 number');
  }
});

test('a COMMAND_FAILED or a bug reaches a remote caller as a code, a sentence and an id; the caller\'s own errors stay word for word', () => {
  const argv = new KumoError('COMMAND_FAILED', 'qemu-img info /var/lib/kumo/secret.qcow2 failed (exit 1): Could not open /etc/shadow');
  const shown = publicError(argv, 'req-42');
  assert.equal(shown.code, 'COMMAND_FAILED');
  assert.ok(!/qemu-img|secret|shadow|exit 1/.test(JSON.stringify(shown)), JSON.stringify(shown));
  assert.equal(shown.withheldUnder, 'req-42');
  assert.match(shown.message, /req-42/);
  const bug = publicError(new Error('SQLITE_CORRUPT at /var/lib/kumo/kumo.db'), 'r1');
  assert.deepEqual([bug.code, /SQLITE|kumo\.db/.test(JSON.stringify(bug))], ['INTERNAL', false]);
  for (const code of ['INVALID_INPUT', 'NOT_FOUND', 'ALREADY_EXISTS', 'IN_USE', 'LIBVIRT_ERROR'] as const) {
    assert.deepEqual(publicError(new KumoError(code, 'what is wrong', 'how to fix'), 'x'), { code, message: 'what is wrong', fix: 'how to fix' });
  }
});

test('a failed operation hands back no argv or stderr; its detail goes to the listener (the server log)', async () => {
  const ops = new OperationRegistry();
  const heard: string[] = [];
  ops.onWithheldFailure((_op, e) => heard.push((e as Error).message));
  const op = ops.start('image.import', 'x', async () => { throw new KumoError('COMMAND_FAILED', 'qemu-img convert /secret/path failed: stderr text'); });
  const done = await ops.wait(op.id);
  assert.equal(done.error?.code, 'COMMAND_FAILED');
  assert.ok(!/secret|stderr/.test(JSON.stringify(done.error)), JSON.stringify(done.error));
  assert.deepEqual(heard, ['qemu-img convert /secret/path failed: stderr text']);
});

test('long operations are capped per token and overall (settings with defaults); more are TOO_BUSY', async () => {
  const settings = new SettingsService(ctx);
  assert.deepEqual([settings.get('api.operations-per-token'), settings.get('api.operations-total')], ['4', '16']);
  assert.throws(() => settings.set('api.operations-total', '0'), refusedAs(/whole number from 1/));
  assert.throws(() => settings.set('api.operations-per-token', 'lots'), refusedAs(/whole number from 1/));
  const ops = new OperationRegistry();
  ops.limitConcurrency(() => ({ perOwner: 2, total: 3 }));
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  const hold = async () => held;
  ops.startFor(by('a'), 'k', 't1', hold);
  ops.startFor(by('a'), 'k', 't2', hold);
  assert.throws(() => ops.startFor(by('a'), 'k', 't3', hold), (e: KumoError) => e.code === 'TOO_BUSY' && /token "a" has 2/.test(e.message) && /api\.operations-per-token/.test(e.fix ?? ''));
  ops.startFor(by('b'), 'k', 't4', hold);
  assert.throws(() => ops.startFor(by('c'), 'k', 't5', hold), (e: KumoError) => e.code === 'TOO_BUSY' && /3 long operations are running/.test(e.message));
  release();
  await Promise.all(ops.list().map((o) => ops.wait(o.id)));
  assert.doesNotThrow(() => ops.startFor(by('a'), 'k', 't6', hold), 'finished ones no longer count');
});

test('the audit log keeps who, what, target and result, newest first, and bounds free text', () => {
  const audit = new AuditService(ctx);
  audit.record({ actor: 'token:ci', via: 'api', action: 'POST /api/v1/instances', target: 'web1', result: 'ok' });
  audit.record({ actor: 'user:root(uid 0)', via: 'cli', action: 'instance delete', target: 'x'.repeat(5000), result: 'NOT_FOUND', detail: 'y'.repeat(10_000) });
  const [newest, older] = audit.recent(2);
  assert.deepEqual([newest!.actor, newest!.action, newest!.result, newest!.target!.length, newest!.detail!.length], ['user:root(uid 0)', 'instance delete', 'NOT_FOUND', 200, 2000]);
  assert.deepEqual([older!.actor, older!.via, older!.target, older!.result], ['token:ci', 'api', 'web1', 'ok']);
  assert.throws(() => audit.recent(0), refusedAs(/limit/));
});
