import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/env.js';
import { HostEvacuate, InstanceStop, VolumeDetach, WafLogQuery } from '../../src/api/schemas.js';
import { EVACUATE_PARALLEL, TIMEOUT_SECONDS, WAF_LOG_LIMIT } from '../../src/model/sizes.js';

/**
 * Bad values on the command line are refused as invalid input (exit 2) by the real CLI before
 * anything runs, with the same bounds the API's bodies have. No VM is needed: the values are
 * refused before a name is looked up.
 */
const home = mkdtempSync(join(tmpdir(), 'kumo-cli-'));
after(() => rmSync(home, { recursive: true, force: true }));
const kumo = (args: string[]) => runCli(args, { env: { ...process.env, KUMO_HOME: home, LANG: 'C.UTF-8' }, allowFailure: true, timeoutMs: 30_000 });

test('--timeout that is no whole number of seconds from 1 to 3600 is invalid input (exit 2), not a wait of NaN s or a forced stop', async () => {
  for (const args of [
    ['instance', 'wait', 'x', '--timeout', 'abc'],
    ['instance', 'wait', 'x', '--timeout', '0'],
    ['instance', 'wait', 'x', '--timeout', '3601'],
    ['instance', 'stop', 'x', '--timeout', '0'],
    ['instance', 'stop', 'x', '--timeout', '1.5'],
    ['volume', 'detach', 'x', '--timeout', 'soon'],
  ]) {
    const r = await kumo(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /--timeout must be a whole number of seconds from 1 to 3600, got ".*"/, args.join(' '));
    assert.doesNotMatch(r.stderr, /NaN/);
  }
});

test('the API refuses the timeouts the CLI refuses: one definition of the bounds', () => {
  for (const body of [InstanceStop, VolumeDetach]) {
    assert.equal(body.safeParse({ timeoutSeconds: 0 }).success, false);
    assert.equal(body.safeParse({ timeoutSeconds: TIMEOUT_SECONDS.max + 1 }).success, false);
    assert.equal(body.safeParse({ timeoutSeconds: TIMEOUT_SECONDS.min }).success, true);
    assert.equal(body.safeParse({ timeoutSeconds: TIMEOUT_SECONDS.max }).success, true);
  }
});

test('counts and ports that are no whole number in range are invalid input (exit 2), not NaN or a silent default', async () => {
  for (const [args, flag] of [
    [['host', 'evacuate', 'x', '--parallel', 'abc'], '--parallel'],
    [['host', 'evacuate', 'x', '--parallel', '17'], '--parallel'],
    [['waf', 'log', 'x', '--limit', '-5'], '--limit'],
    [['waf', 'log', 'x', '--limit', 'many'], '--limit'],
    [['lb', 'create', 'x', '--host', 'h', '--frontend', '10.0.0.1', '--network', 'n', '--backend-port', '0x50'], '--backend-port'],
    [['lb', 'create', 'x', '--host', 'h', '--frontend', '10.0.0.1', '--network', 'n', '--backend-port', '70000'], '--backend-port'],
  ] as const) {
    const r = await kumo([...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${flag} must be a whole number from \\d+ to \\d+, got ".*"`), args.join(' '));
  }
});

test('the API refuses the counts the CLI refuses: one definition of the bounds', () => {
  assert.equal(HostEvacuate.safeParse({ parallel: EVACUATE_PARALLEL.max + 1 }).success, false);
  assert.equal(HostEvacuate.safeParse({ parallel: EVACUATE_PARALLEL.max }).success, true);
  assert.equal(WafLogQuery.safeParse({ limit: String(WAF_LOG_LIMIT.max + 1) }).success, false);
  assert.equal(WafLogQuery.safeParse({ limit: '0' }).success, false);
});
