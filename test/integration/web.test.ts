import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { makeTestEnv, waitFor, type TestEnv } from '../helpers/env.js';
import { screenFacts } from '../helpers/png.js';
import { DEFAULT_WEB_ROOT, type ApiServer } from '../../src/api/server.js';
import { apiToken, listenApi } from '../helpers/api.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { ShareService } from '../../src/service/shares.js';
import { HostService } from '../../src/service/host.js';
import { LoadBalancerService } from '../../src/service/loadbalancers.js';
import { local } from '../../src/exec/exec.js';

/**
 * The dashboard in Debian's chromium (playwright-core, HOST-NOTES "Browser tests"), against the
 * server in-process on loopback: log in with the token, create an instance with the form, see it
 * become running without a reload, open its VNC console and see the guest's screen, open the
 * charts and see them draw, take a snapshot, shut the guest down and revert it to running, delete the snapshot, list and make shares, see a load balancer with its WAF blocks, delete it from the list; a project member logs in with a password and sees its use against its caps, and an admin switches projects. Screenshots are kept as artefacts in the
 * test's own folder (/tmp/kumo-test-PREFIX-shots-*), whose paths are printed; the folder is removed
 * after a clean run and kept when a test failed (or with KUMO_TEST_KEEP_SHOTS=1).
 */
const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run'];

let env: TestEnv;
let app: ApiServer | undefined;
let browser: Browser | undefined;
let page: Page;
let base: string;
let token: string;
let name: string;
let shots: string;
/** The storage node's network namespace (its NFS server runs inside), made by the shares test. */
let stgNs: string | undefined;
/** The lb node's network namespace (HAProxy and the WAF run inside), made by the load balancer test. */
let lbNs: string | undefined;

before(async () => {
  assert.ok(existsSync(`${DEFAULT_WEB_ROOT}/index.html`), 'the dashboard is built (npm run build)');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} (Debian package chromium)`);
  env = await makeTestEnv('web');
  name = `${env.prefix}-w`;
  shots = await mkdtemp(join(tmpdir(), `kumo-test-${env.prefix}-shots-`));
  token = apiToken(env.ctx);
  await new ImageService(env.ctx).buildTiny();
  ({ app, base } = await listenApi(env.ctx, { monitor: { intervalMs: 2_000, record: false } }));
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 120_000 });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.setDefaultTimeout(60_000);
  page.on('dialog', (d) => void d.accept());
  // Nothing the page loads may come from anywhere but this server.
  await page.route('**/*', (route) => (route.request().url().startsWith(base) ? route.continue() : route.abort()));
});

after(async () => {
  await browser?.close().catch(() => undefined);
  await app?.close();
  if (env) {
    await new InstanceService(env.ctx).delete(name).catch(() => undefined);
    for (const s of env.ctx.shares.list()) await new ShareService(env.ctx).delete(s.name).catch(() => undefined);
    for (const l of env.ctx.loadBalancers.list()) await new LoadBalancerService(env.ctx).delete(l.name).catch(() => undefined);
    for (const ns of [stgNs, lbNs]) {
      if (!ns) continue;
      // What still runs in this run's namespaces was started by this run.
      const pids = (await local.run('ip', ['netns', 'pids', ns], { allowFailure: true })).stdout.split('\n').map(Number).filter((p) => p > 1);
      for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ } }
    }
    await env.cleanup();
  }
  // Screenshots are for looking into a failure: kept then (or with KUMO_TEST_KEEP_SHOTS=1), removed after a clean run.
  if (shots && (anyFailed || process.env.KUMO_TEST_KEEP_SHOTS === '1')) console.log(`# screenshots kept in ${shots}`);
  else if (shots) await rm(shots, { recursive: true, force: true });
});

let anyFailed = false;
// TestContext.passed is a boolean in the Node this suite runs on; the check stays false where it is missing.
afterEach((t) => { if ((t as { passed?: boolean }).passed === false) anyFailed = true; });

async function shot(file: string, what: Page | ReturnType<Page['locator']> = page): Promise<string> {
  const path = join(shots, file);
  await what.screenshot({ path });
  console.log(`# screenshot: ${path}`);
  return path;
}

/** How often the guest's kernel started: its banner on the serial console, as the API serves the log. */
async function kernelBoots(): Promise<number> {
  const r = await fetch(`${base}/api/v1/instances/${name}/console-log`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200);
  return (await r.text()).match(/Linux version \d/g)?.length ?? 0;
}

/** The guest answers HTTP on its address (up again, with its network). */
async function guestAnswers(): Promise<void> {
  const ip = await waitFor('the guest\'s address', async () => (await new InstanceService(env.ctx).get(name)).nics.find((n) => n.ipv4)?.ipv4, 120_000);
  const body = await waitFor(`HTTP from ${ip}`, async () =>
    fetch(`http://${ip}:8080/`, { signal: AbortSignal.timeout(3_000) }).then((r) => r.text()).catch(() => undefined), 180_000);
  assert.match(body, new RegExp(name));
}

test('log in with the token (a wrong one is refused)', async () => {
  await page.goto(base);
  await page.fill('input[name=token]', 'kumo_wrong');
  await page.click('button[type=submit]');
  await page.getByRole('alert').filter({ hasText: 'not valid' }).waitFor();
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
  await page.getByRole('heading', { name: /Instances/ }).waitFor();
  await page.locator('.live.on').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('kumo.token')), token);
  await shot('01-instances-empty.png');
});

test('create from the form, then see it become running without a reload', async () => {
  // A mark in this document: still there at the end means no reload happened.
  await page.evaluate(() => { (window as unknown as { kumoMark: number }).kumoMark = 42; });
  await page.click('a[href="#/create"]');
  await page.fill('input[name=name]', name);
  await page.locator('select[name=image] option[value=tiny]').waitFor({ state: 'attached' });
  await page.selectOption('select[name=image]', 'tiny');
  await page.selectOption('select[name=flavor]', 'small');
  await page.fill('input[name=password]', 'pw-from-the-form');
  await page.fill('input[name=password2]', 'pw-from-the-form');
  await page.selectOption('select[name=network]', env.network);
  await page.fill('input[name=disk]', '1');
  await page.click('button[type=submit]');
  const summary = await page.locator('dl.summary').innerText();
  assert.match(summary, new RegExp(name));
  assert.match(summary, /1 GiB/);
  await shot('02-create-confirm.png');
  await page.click('button[name=confirm]');
  const row = page.locator(`tr[data-instance="${name}"]`);
  await row.waitFor({ timeout: 120_000 });
  await row.locator('[data-state="running"]').waitFor({ timeout: 300_000 });
  assert.equal(await page.evaluate(() => (window as unknown as { kumoMark?: number }).kumoMark), 42, 'the page was not reloaded');
  const rec = await new InstanceService(env.ctx).get(name);
  assert.deepEqual(rec.dataDisks, [1]);
  assert.deepEqual(rec.networks, [env.network]);
  await shot('03-instances-running.png');
});

test('the console shows the guest\'s screen (not blank): its login prompt once it has booted', async () => {
  await page.click(`tr[data-instance="${name}"] a`);
  await page.locator('.console-status[data-status="connected"]').waitFor({ timeout: 120_000 });
  const canvas = page.locator('.screen canvas');
  await canvas.waitFor();
  const early = screenFacts(await shot('04-console-early.png', canvas));
  // Booted: it answers HTTP on its network (the tiny image's readiness), and tty1 has its login prompt.
  const { ip } = await new InstanceService(env.ctx).waitReady(name, 300_000);
  let facts = { width: 0, height: 0, lit: 0 };
  let file = '';
  const deadline = Date.now() + 120_000;
  for (;;) {
    file = await shot('05-console.png', canvas);
    facts = screenFacts(file);
    // Not blank, and not the firmware's screen any more.
    if (facts.lit > 0.002 && facts.lit !== early.lit) break;
    if (Date.now() > deadline) break;
    await page.waitForTimeout(3_000);
  }
  console.log(`# console screenshot ${facts.width}x${facts.height}, lit ${(facts.lit * 100).toFixed(2)} % (at first ${(early.lit * 100).toFixed(2)} %); guest at ${ip}`);
  assert.ok(facts.width > 100 && facts.height > 100, `${facts.width}x${facts.height}`);
  assert.ok(facts.lit > 0.002, `the console screenshot ${file} is blank (lit ${facts.lit})`);
  assert.notEqual(facts.lit, early.lit, 'the screen changed from the firmware\'s as the guest booted');
  // The page's facts say the guest is ready, by the tiny image's check (refreshed every 5 s).
  const ready = page.locator('dd[data-readiness="ready"]');
  await ready.waitFor({ timeout: 60_000 });
  assert.match(await ready.innerText(), /ready \(http:8080\): answers at http:\/\/\d+\.\d+\.\d+\.\d+:8080\//);
  await shot('06-detail.png');
});

test('the charts draw net rx/tx and CPU from live readings', async () => {
  await page.click('button[name=tab-charts]');
  await page.locator('p.now[data-points="yes"]').waitFor({ timeout: 120_000 });
  // Count pixels of each series' colour on the charts' canvases: a line was drawn.
  const drawn = async () => page.evaluate(() => {
    const count = (sel: string, rgb: [number, number, number]) => {
      const c = document.querySelector<HTMLCanvasElement>(`${sel} canvas`);
      if (!c) return 0;
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3]! > 200 && Math.abs(d[i]! - rgb[0]) < 40 && Math.abs(d[i + 1]! - rgb[1]) < 40 && Math.abs(d[i + 2]! - rgb[2]) < 40) n++;
      }
      return n;
    };
    return { rx: count('.chart.net', [0x22, 0xaa, 0x77]), cpu: count('.chart.cpu', [0xcc, 0x55, 0x22]) };
  });
  let px = await drawn();
  const deadline = Date.now() + 120_000;
  while ((px.rx < 20 || px.cpu < 20) && Date.now() < deadline) {
    await page.waitForTimeout(2_000);
    px = await drawn();
  }
  await shot('07-charts.png');
  assert.ok(px.rx >= 20 && px.cpu >= 20, `series pixels: ${JSON.stringify(px)}`);
});

test('the serial console (xterm.js) shows the guest\'s login prompt and answers typing', async () => {
  await page.click('button[name=tab-serial]');
  await page.locator('.serial-status[data-status="connected"]').waitFor({ timeout: 60_000 });
  const rows = page.locator('.serial-screen .xterm-rows');
  await rows.waitFor();
  // The page presses Enter on connecting; press it again until the prompt shows.
  const deadline = Date.now() + 120_000;
  while (!/login:/.test(await rows.innerText()) && Date.now() < deadline) {
    await page.locator('.serial-screen').click();
    await page.keyboard.press('Enter');
    await page.waitForTimeout(2_000);
  }
  assert.match(await rows.innerText(), /login:/);
  await page.keyboard.type('root');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /assword/i.test(document.querySelector('.serial-screen .xterm-rows')?.textContent ?? ''), undefined, { timeout: 30_000 });
  await shot('08-serial.png');
  // Leaving the tab closes the WebSocket; the server ends its virsh console.
  await page.click('button[name=tab-charts]');
});

test('the topology draws a node per host and per instance, wired to the networks', async () => {
  await page.click('a[href="#/topology"]');
  const svg = page.locator('svg.topo');
  await svg.locator(`g.topo-instance[data-instance="${name}"]`).waitFor({ timeout: 30_000 });
  const hosts = (await (await fetch(`${base}/api/v1/hosts`, { headers: { authorization: `Bearer ${token}` } })).json()) as { name: string }[];
  const instances = (await (await fetch(`${base}/api/v1/instances`, { headers: { authorization: `Bearer ${token}` } })).json()) as { name: string; host: string }[];
  assert.ok(hosts.length >= 1);
  assert.equal(await svg.locator('g.topo-host').count(), new Set([...hosts.map((h) => h.name), ...instances.map((i) => i.host)]).size);
  for (const h of hosts) assert.equal(await svg.locator(`g.topo-host[data-host="${h.name}"]`).count(), 1, `host ${h.name}`);
  assert.equal(await svg.locator('g.topo-instance').count(), instances.length);
  for (const i of instances) {
    assert.equal(await svg.locator(`g.topo-host[data-host="${i.host}"] g.topo-instance[data-instance="${i.name}"]`).count(), 1, `instance ${i.name} inside host ${i.host}`);
  }
  assert.equal(await svg.locator(`g.topo-network[data-network="${env.network}"]`).count(), 1);
  assert.equal(await svg.locator(`line.topo-link[data-link="${name}:${env.network}"]`).count(), 1, 'the instance is wired to its network');
  await shot('09-topology.png');
});

test('snapshots: take one from the instance page, see it listed, revert to it and delete it', async () => {
  await page.click('a[href="#/instances"]');
  await page.click(`tr[data-instance="${name}"] a`);
  await page.click('button[name=tab-snapshots]');
  await page.locator('div.snapshots').waitFor();
  const snap = 'from-the-page';
  await page.fill('input[name=snapshot-name]', snap);
  await page.click('button[name=snapshot-create]');
  // A running guest: the snapshot has its memory too.
  const row = page.locator(`tr[data-snapshot="${snap}"]`);
  await row.waitFor({ timeout: 120_000 });
  assert.match(await row.innerText(), /running\s+yes/);
  const listed = await (await fetch(`${base}/api/v1/instances/${name}/snapshots`, { headers: { authorization: `Bearer ${token}` } })).json() as { name: string }[];
  assert.deepEqual(listed.map((s) => s.name), [snap]);
  await shot('10a-snapshots.png');
  // A change after the snapshot for the revert to undo: the guest is shut down.
  const svc = new InstanceService(env.ctx);
  const bootsBefore = await kernelBoots();
  await svc.stop(name);
  // ask: libvirt itself, right after kumo's own change (the followed event may trail it on a busy machine).
  assert.equal((await svc.get(name, { ask: true })).state, 'shut off');
  await row.getByRole('button', { name: 'revert' }).click();
  await row.getByRole('button', { name: 'revert' }).waitFor({ timeout: 120_000 });
  assert.equal(await page.getByRole('alert').count(), 0, 'no error shown');
  // Back to the snapshot's state: running, resumed from its memory (no new boot), still serving.
  assert.equal((await svc.get(name, { ask: true })).state, 'running', 'the revert brought back the running guest');
  assert.equal(await kernelBoots(), bootsBefore, 'resumed from the snapshot\'s memory, not booted again');
  await guestAnswers();
  await row.getByRole('button', { name: 'delete' }).click();
  await row.waitFor({ state: 'detached', timeout: 120_000 });
  assert.equal(await page.getByRole('alert').count(), 0, 'no error shown');
});

test('shares: one made through the API is listed; one made with the form is served, then deleted', async () => {
  // A storage node of this run: ganesha in its own namespace, so no other NFS server on this machine is touched.
  stgNs = `${env.prefix}-stg`;
  await local.run('ip', ['netns', 'add', stgNs]);
  await local.run('ip', ['-n', stgNs, 'link', 'set', 'lo', 'up']);
  await new HostService(env.ctx).add({ name: stgNs, roles: ['storage'], shell: { kind: 'netns', netns: stgNs } });
  const api = `${env.prefix}-s1`;
  const made = await fetch(`${base}/api/v1/shares`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: api, networks: [env.network] }),
  });
  assert.equal(made.status, 201, await made.text());
  await page.click('a[href="#/shares"]');
  const row = page.locator(`tr[data-share="${api}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), new RegExp(`${env.network}[\\s\\S]*read-write`));
  const mine = `${env.prefix}-s2`;
  await page.fill('input[name=share-name]', mine);
  await page.check(`input[name=share-network][value="${env.network}"]`);
  await page.check('input[name=share-readonly]');
  await page.click('.shares form button[type=submit]');
  const second = page.locator(`tr[data-share="${mine}"]`);
  await second.waitFor({ timeout: 60_000 });
  assert.match(await second.innerText(), /read-only/);
  assert.equal((await new ShareService(env.ctx).get(mine)).readOnly, true);
  await shot('10b-shares.png');
  for (const s of [mine, api]) {
    await page.locator(`tr[data-share="${s}"] button[name=delete]`).click();
    await page.locator(`tr[data-share="${s}"]`).waitFor({ state: 'detached', timeout: 60_000 });
  }
  assert.deepEqual(env.ctx.shares.list(), []);
  new HostService(env.ctx).remove(stgNs);
});

test('load balancers: frontend, backends with their health and the WAF\'s recent blocks; delete from the page', async () => {
  await page.click('a[href="#/loadbalancers"]');
  await page.getByText('No load balancers.').waitFor();
  // An lb node of this run (HAProxy and nginx+ModSecurity inside its namespace) in front of the instance.
  lbNs = `${env.prefix}-lb`;
  await local.run('ip', ['netns', 'add', lbNs]);
  await local.run('ip', ['-n', lbNs, 'link', 'set', 'lo', 'up']);
  await new HostService(env.ctx).add({ name: lbNs, roles: ['lb'], shell: { kind: 'netns', netns: lbNs } });
  const lb = `${env.prefix}-lb1`;
  const made = await fetch(`${base}/api/v1/loadbalancers`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: lb, host: lbNs, frontend: '127.0.0.1:8081', network: env.network, instances: [name], waf: { enabled: true } }),
  });
  assert.equal(made.status, 201, await made.text());
  const attack = await local.run('ip', ['netns', 'exec', lbNs, 'curl', '-s', '-g', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5',
    "http://127.0.0.1:8081/?id=1'%20OR%20'1'='1"], { allowFailure: true });
  assert.equal(attack.stdout, '403');
  const card = page.locator(`article[data-lb="${lb}"]`);
  await card.waitFor({ timeout: 30_000 });
  assert.match(await card.innerText(), /http:\/\/127\.0\.0\.1:8081\//);
  await card.locator(`tr[data-backend="${name}"] [data-health]`).waitFor();
  // The page reloads the WAF log every 10 s: the block shows with its rule.
  await card.locator('table.waf tr', { hasText: '942100' }).waitFor({ timeout: 30_000 });
  await shot('10c-loadbalancers.png');
  await card.locator('button[name=delete]').click();
  await card.waitFor({ state: 'detached', timeout: 60_000 });
  assert.deepEqual(env.ctx.loadBalancers.list(), []);
  new HostService(env.ctx).remove(lbNs);
});

test('hosts and networks pages, then reboot and delete the instance from the list', async () => {
  await page.click('a[href="#/hosts"]');
  await page.locator('tr[data-host="local"]').waitFor();
  assert.match(await page.locator('tr[data-host="local"]').innerText(), /up/);
  await shot('10-hosts.png');
  await page.click('a[href="#/networks"]');
  await page.locator(`tr[data-network="${env.network}"]`).waitFor();
  assert.match(await page.locator(`tr[data-network="${env.network}"]`).innerText(), new RegExp(name));
  await page.click('a[href="#/volumes"]');
  await page.getByRole('heading', { name: 'Volumes' }).waitFor();
  await page.click('a[href="#/instances"]');
  const row = page.locator(`tr[data-instance="${name}"]`);
  await row.locator('[data-state="running"]').waitFor();
  const bootsBefore = await kernelBoots();
  await row.getByRole('button', { name: 'reboot' }).click();
  // The action answers, the buttons come back, no error.
  await row.getByRole('button', { name: 'reboot' }).waitFor({ timeout: 120_000 });
  assert.equal(await page.getByRole('alert').count(), 0, 'no error shown');
  // And the guest really booted again: a new kernel start on its serial console, then it serves.
  await waitFor('the guest to boot again', async () => ((await kernelBoots()) > bootsBefore ? true : undefined), 180_000);
  await guestAnswers();
  await row.locator('button.danger').click();
  await row.waitFor({ state: 'detached', timeout: 120_000 });
  assert.equal(env.ctx.instances.get(name), undefined);
});

test('a project\'s member logs in with a password and sees its use against the caps; an admin switches projects', async () => {
  const project = `${env.prefix}-p1`;
  const vol = `${env.prefix}-v1`;
  const user = `${env.prefix}-u1`;
  const kumo = async (...args: string[]) => {
    const r = await env.cli(args);
    assert.equal(r.code, 0, `kumo ${args.join(' ')}: ${r.stderr}`);
  };
  const passwordFile = join(env.home, 'student.pw');
  await writeFile(passwordFile, 'a long student password\n', { mode: 0o600 });
  await kumo('project', 'create', project, '--max-instances', '1', '--max-volumes', '2');
  await kumo('user', 'create', user, '--project', project, '--role', 'member', '--password-file', passwordFile);
  await kumo('--project', project, 'volume', 'create', vol, '--size', '1');
  try {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.fill('input[name=user]', user);
    await page.fill('input[name=login-password]', 'a long student password');
    await page.click('button[name=login-user]');
    const bar = page.locator(`.project-bar[data-project="${project}"]`);
    await bar.locator('[data-quota=volumes]').getByText('volumes 1 / 2').waitFor();
    assert.equal(await bar.locator('[data-quota=instances]').innerText(), 'instances 0 / 1');
    assert.equal(await page.locator('select[name=project]').count(), 0, 'a member has no project switcher');
    await shot('11-member-usage.png');

    // The admin (the token) picks the project: its lists and its use.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.fill('input[name=token]', token);
    await page.click('button[type=submit]');
    await page.locator('.project-bar[data-project="default"]').waitFor();
    await page.locator('select[name=project]').selectOption(project);
    await page.locator(`.project-bar[data-project="${project}"]`).getByText('volumes 1 / 2').waitFor();
    await page.click('a[href="#/volumes"]');
    await page.getByText(vol).waitFor();
    await shot('12-admin-switched.png');
  } finally {
    await env.cli(['--project', project, 'volume', 'delete', vol]);
    await env.cli(['user', 'delete', user]);
    await env.cli(['project', 'delete', project]);
  }
});
