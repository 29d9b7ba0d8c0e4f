import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import type { ApiServer } from '../../src/api/server.js';
import { apiToken, listenApi } from '../helpers/api.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { local } from '../../src/exec/exec.js';

/**
 * /metrics of a server in-process with its collector running over a real guest: Prometheus's
 * own linter (promtool check metrics, Debian package prometheus) accepts the live page, which
 * has the guest's CPU, memory, disk and network counters, the host's capacity and the API's
 * request counts and latency histogram; without the token it is a 401.
 */
let env: TestEnv;
let app: ApiServer | undefined;
let base: string;
let token: string;
let name: string;
let scratch: string | undefined;

before(async () => {
  env = await makeTestEnv('met');
  token = apiToken(env.ctx);
  await new ImageService(env.ctx).buildTiny();
  name = `${env.prefix}-m`;
  await new InstanceService(env.ctx).create({ name, image: 'tiny', flavor: 'small', password: 'pw', networks: [env.network] });
  ({ app, base } = await listenApi(env.ctx, { monitor: { intervalMs: 1_000, record: false } }));
  scratch = await mkdtemp(join(tmpdir(), `kumo-${env.prefix}-metrics-`));
});

after(async () => {
  await app?.close();
  if (env) {
    await new InstanceService(env.ctx).delete(name).catch(() => undefined);
    await env.cleanup();
  }
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

const scrape = async (auth = `Bearer ${token}`) => fetch(`${base}/metrics`, { headers: auth ? { authorization: auth } : {} });

test('/metrics needs the token', async () => {
  const r = await scrape('');
  assert.equal(r.status, 401);
  assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
  assert.equal((await scrape('Bearer kumo_nope')).status, 401);
});

test('a live /metrics passes promtool check metrics and has instance, host and API figures', async () => {
  // Some API traffic to count, and two collector rounds so the guest has counters.
  for (let i = 0; i < 3; i++) assert.equal((await fetch(`${base}/api/v1/instances`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
  const text = await waitFor('the guest\'s network counters on /metrics', async () => {
    const r = await scrape();
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const body = await r.text();
    return body.includes(`kumo_instance_network_receive_bytes_total{instance="${name}"`) ? body : undefined;
  }, 120_000);
  const file = join(scratch!, 'metrics.txt');
  await writeFile(file, text);
  const r = await local.run('promtool', ['check', 'metrics'], { input: text, allowFailure: true });
  assert.equal(r.code, 0, `promtool check metrics: ${r.stdout}${r.stderr}`);
  assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'no lint findings');

  const value = (re: RegExp) => {
    const m = re.exec(text);
    assert.ok(m, `${re} not on the page`);
    return Number(m[1]);
  };
  const inst = `instance="${name}",host="local"`;
  assert.ok(value(new RegExp(`^kumo_instance_cpu_seconds_total\\{${inst}\\} (\\S+)$`, 'm')) > 0);
  assert.ok(value(new RegExp(`^kumo_instance_memory_bytes\\{${inst}\\} (\\S+)$`, 'm')) > 0);
  value(new RegExp(`^kumo_instance_disk_read_bytes_total\\{${inst},device="[^"]+"\\} (\\S+)$`, 'm'));
  value(new RegExp(`^kumo_instance_network_receive_bytes_total\\{${inst},interface="[^"]+"\\} (\\S+)$`, 'm'));
  value(new RegExp(`^kumo_instance_network_transmit_bytes_total\\{${inst},interface="[^"]+"\\} (\\S+)$`, 'm'));
  assert.ok(value(/^kumo_host_cpus\{host="local"\} (\S+)$/m) >= 1);
  assert.ok(value(/^kumo_host_memory_bytes\{host="local"\} (\S+)$/m) > 0);
  assert.equal(value(/^kumo_host_instances\{host="local"\} (\S+)$/m), 1);
  assert.equal(value(/^kumo_host_allocated_vcpus\{host="local"\} (\S+)$/m), 1);
  const listed = value(/^kumo_api_requests_total\{method="GET",route="\/api\/v1\/instances",code="200"\} (\S+)$/m);
  assert.ok(listed >= 3, `${listed} list requests counted`);
  assert.equal(value(/^kumo_api_request_duration_seconds_count\{method="GET",route="\/api\/v1\/instances",code="200"\} (\S+)$/m), listed);
  assert.equal(value(/^kumo_api_request_duration_seconds_bucket\{method="GET",route="\/api\/v1\/instances",code="200",le="\+Inf"\} (\S+)$/m), listed);
  // Route templates, never raw URLs: one series for every instance name.
  assert.doesNotMatch(text, new RegExp(`route="[^"]*${name}`));
});

test('the dashboard\'s readings of an instance come from the same collector', async () => {
  type Readings = { intervalMs: number; readings: { at: number; cpuPct?: number; rxBps?: number }[] };
  const body = await waitFor('readings with rates', async () => {
    const r = await fetch(`${base}/api/v1/instances/${name}/readings`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
    const b = await r.json() as Readings;
    return b.readings.some((x) => x.cpuPct !== undefined && x.rxBps !== undefined) ? b : undefined;
  }, 60_000);
  assert.equal(body.intervalMs, 1_000);
  const since = body.readings.at(-1)!.at;
  const later = await (await fetch(`${base}/api/v1/instances/${name}/readings?since=${since}`, { headers: { authorization: `Bearer ${token}` } })).json() as Readings;
  assert.ok(later.readings.every((x) => x.at >= since) && later.readings.length >= 1);
  assert.equal((await fetch(`${base}/api/v1/instances/nope/readings`, { headers: { authorization: `Bearer ${token}` } })).status, 404);
});
