import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { local } from '../../src/exec/exec.js';
import { NetnsExecutor } from '../../src/exec/netns.js';
import { Haproxy } from '../../src/drivers/daemons/haproxy/haproxy.js';
import { NginxWaf } from '../../src/drivers/daemons/nginx-waf/nginx-waf.js';
import type { WafSpec } from '../../src/drivers/daemons/nginx-waf/config.js';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { WAF_PROBES, expectedBlocking, sendWafProbes } from '../helpers/waf-attacks.js';

/**
 * kumo's WAF with the attack set the WAF benchmark sends to every engine (bench/waf-engines.ts):
 * the datacenter's chain (WAF :80 → HAProxy 127.0.0.1:8000 → a backend that answers 200 to any
 * path and method), all in one namespace of the test's own, driven through kumo's drivers. The
 * benchmark's figures count only if kumo's config blocks exactly what the bare engines block:
 * every attack 403, every clean request 200. Detection-only mode is the control: the same probes
 * then all pass, so a config that does not block fails the first test.
 */
const TOOLS = ['haproxy', 'nginx', 'curl', 'ip'];
const BACKEND_JS = `require('node:http').createServer((req, res) => { req.resume(); res.end('backend\\n'); }).listen(8080, '127.0.0.1');`;

let env: TestEnv;
let missing = '';
let ns = '';
let exec: NetnsExecutor;
let lb: Haproxy;
let waf: NginxWaf;
let backend: ChildProcess | undefined;

const wafSpec = (enabled: boolean): WafSpec => ({ name: 'web', listen: { address: '0.0.0.0', port: 80 }, upstream: { address: '127.0.0.1', port: 8000 }, enabled, paranoia: 1 });
const allPass = () => new Map(WAF_PROBES.map((p) => [p.name, '200']));

before(async () => {
  missing = (await local.run('sh', ['-c', 'for t; do command -v "$t" >/dev/null || echo "$t"; done', 'sh', ...TOOLS])).stdout.trim();
  if (missing) return;
  env = await makeTestEnv('wafe');
  ns = `${env.prefix}-lb`;
  await local.run('ip', ['netns', 'add', ns]);
  await local.run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  exec = new NetnsExecutor(ns);
  backend = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', BACKEND_JS], { stdio: 'ignore' });
  lb = new Haproxy(join(env.home, 'lb'), exec);
  waf = new NginxWaf(join(env.home, 'waf'), exec);
  await lb.apply({ name: 'web', frontend: { address: '127.0.0.1', port: 8000 }, backends: [{ name: 'b1', address: '127.0.0.1', port: 8080 }], health: { intervalMs: 500, fall: 2, rise: 1 } });
  await waitFor('the backend UP in HAProxy', async () => ((await lb.health()).some((s) => s.status === 'UP') ? true : undefined), 20_000);
});

after(async () => {
  if (!env) return;
  await waf?.stop().catch(() => undefined);
  await lb?.stop().catch(() => undefined);
  backend?.kill('SIGKILL');
  if (ns) {
    // Anything still running in this run's namespace was started by this run: end it, or the namespace outlives `ip netns del`.
    const pids = (await local.run('ip', ['netns', 'pids', ns], { allowFailure: true })).stdout.split('\n').map(Number).filter((p) => p > 1);
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ } }
    await local.run('ip', ['netns', 'del', ns], { allowFailure: true });
  }
  await env.cleanup();
});

test('kumo\'s WAF answers the shared attack set as the bare engines do: every attack 403, every clean request 200', { timeout: 120_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  await waf.apply(wafSpec(true));
  await waitFor('the WAF answering', async () => ((await sendWafProbes(exec, 'http://127.0.0.1:80')).get('clean: the home page') === '200' ? true : undefined), 20_000);
  assert.deepEqual(await sendWafProbes(exec, 'http://127.0.0.1:80'), expectedBlocking());
});

test('control: in detection-only mode the same probes all pass, and the attacks are logged', { timeout: 120_000 }, async (t) => {
  if (missing) return t.skip(`not installed: ${missing.split('\n').join(', ')}`);
  assert.equal(await waf.apply(wafSpec(false)), 'reloaded');
  assert.deepEqual(await sendWafProbes(exec, 'http://127.0.0.1:80'), allPass(), 'a WAF that does not block lets the whole set through');
  const events = await waf.recentEvents(200);
  assert.ok(events.length >= WAF_PROBES.filter((p) => p.kind === 'attack').length, `every attack leaves an audit record (found ${events.length})`);
  // And back: blocking again after a reload, as `kumo lb set --waf on` does.
  assert.equal(await waf.apply(wafSpec(true)), 'reloaded');
  assert.deepEqual(await sendWafProbes(exec, 'http://127.0.0.1:80'), expectedBlocking());
});
