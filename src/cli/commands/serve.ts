import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { context, say } from '../app.js';
import { API_PREFIX, DEFAULT_PORT, DOCS_PATH } from '../../api/schemas.js';
import { MonitoringService } from '../../service/monitoring.js';
import { OperationRegistry } from '../../service/operations.js';
import { TokenService } from '../../service/tokens.js';
import { DoctorService, problemsIn } from '../../service/doctor.js';
import { recordServeAddress } from '../../service/clouds-yaml.js';
import type { Context } from '../../service/context.js';
import { invalid, KumoError } from '../../model/errors.js';
import { parseWhole } from '../../model/sizes.js';
import { DEFAULT_WATCH } from '../../model/ha.js';
import { liveWatcher } from '../../service/ha/live.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'silent'];

const loopback = (addr: string) => addr === 'localhost' || addr === '::1' || /^127\./.test(addr);

export function serveCommand(): Command {
  return new Command('serve').description('the REST API on http://ADDR:PORT/api/v1, its OpenAPI document and an interactive page')
    .option('--listen <addr>', 'address to listen on (0.0.0.0 or :: for every interface)', '127.0.0.1')
    .option('--port <n>', 'TCP port', String(DEFAULT_PORT))
    .addOption(new Option('--log-level <level>', 'request log on stderr').choices(LOG_LEVELS).default('info'))
    .option('--monitor-interval <seconds>', 'how often the collector behind /metrics and the dashboard\'s charts reads every hypervisor (0: no collector)', '5')
    .option('--no-ha', 'do not run the HA watcher (kumo ha run) in the server')
    .action(async (o: { listen: string; port: string; logLevel: string; monitorInterval: string; ha: boolean }) => {
      const port = parseWhole(o.port);
      const every = Number(o.monitorInterval);
      if (!(Number.isFinite(every) && every >= 0 && every <= 3600)) throw invalid(`--monitor-interval must be seconds from 0 to 3600, got "${o.monitorInterval}"`, 'e.g. --monitor-interval 5');
      if (!(port >= 0 && port <= 65_535)) throw invalid(`--port must be a whole number from 0 to 65535, got "${o.port}"`, `e.g. --port ${DEFAULT_PORT}`);
      if (o.listen !== 'localhost' && !isIP(o.listen)) throw invalid(`--listen must be an IP address, got "${o.listen}"`, 'e.g. --listen 127.0.0.1, or 0.0.0.0 for every interface');
      const ctx = await context();
      const ops = new OperationRegistry();
      // Logs go to stderr: stdout carries only what a script may read (the address, the admin token).
      // Loaded only here: Fastify and its plugins would add ~0.3 s to every other kumo command.
      const { buildServer } = await import('../../api/server.js');
      const app = await buildServer(ctx, {
        ops,
        logger: {
          level: o.logLevel, stream: process.stderr,
          // A console ticket rides in the WebSocket's query string: keep it out of the log.
          serializers: {
            req: (req: { method: string; url: string; host?: string; ip?: string; socket?: { remotePort?: number } }) => ({
              method: req.method, url: req.url.replace(/([?&]ticket=)[^&]*/g, '$1REDACTED'), host: req.host,
              remoteAddress: req.ip, remotePort: req.socket?.remotePort,
            }),
          },
        },
        // A background collector (a datacenter file's monitoring) records the history already:
        // the server's own then only feeds /metrics and the charts, without writing it twice.
        monitor: every === 0 ? false : { intervalMs: Math.max(1_000, Math.round(every * 1000)), record: !(await new MonitoringService(ctx).collectorDaemon()) },
      });
      try {
        await app.listen({ host: o.listen, port });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') throw new KumoError('IN_USE', `port ${port} on ${o.listen} is in use`, 'stop what listens there, or pick another --port');
        if (code === 'EADDRNOTAVAIL') throw invalid(`${o.listen} is not an address of this machine`, 'give one of its addresses, or 0.0.0.0');
        throw e;
      }
      const a = app.server.address() as AddressInfo;
      const base = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
      // `kumo token create --clouds-yaml` points OpenStack clients here.
      recordServeAddress(ctx, base);
      // Made only once it listens, so a failed start does not use up the one showing of the token.
      const admin = new TokenService(ctx).ensureAdmin();
      if (admin) {
        // On a terminal it is shown; under a service manager stdout ends up in the system log,
        // so the token goes to a file only root can read, to be read once and removed.
        if (process.stdout.isTTY) console.log(`admin token (shown only now, kumo keeps only its hash): ${admin.token}`);
        else {
          const file = join(ctx.paths.home, 'admin-token');
          await writeFile(file, `${admin.token}\n`, { mode: 0o600 });
          console.log(`admin token written to ${file} (read it, then delete the file: kumo keeps only its hash)`);
        }
      }
      say(`dashboard: ${base}/ · Prometheus metrics (same bearer token): ${base}/metrics`);
      // The last line of the start: whoever waits for the server can take it as "ready".
      console.log(`kumo API on ${base}${API_PREFIX} (OpenAPI: ${base}/openapi.json, interactive: ${base}${DOCS_PATH})`);
      void reconcileOnStart(ctx);
      // The host-failure watcher, with its steps as resource events for live views.
      const haStop = new AbortController();
      const ha = o.ha ? liveWatcher(ctx, DEFAULT_WATCH, { event: (r, n, a) => ops.resourceChanged(r, n, a), log: (line) => app.log.info(line) }).run(haStop.signal)
        .catch((e: Error) => app.log.error(`the HA watcher stopped: ${e.message}`)) : undefined;
      if (!loopback(o.listen)) say(`warning: listening on ${o.listen} over plain HTTP: tokens and passwords cross the network readable; put a TLS proxy in front`);
      await untilStopped(async () => {
        haStop.abort();
        await ha;
        await app.close();
        const running = ops.list().filter((op) => op.state === 'running');
        if (running.length) {
          say(`waiting for ${running.length} operation(s) to finish: ${running.map((op) => `${op.kind} ${op.target}`).join(', ')} (again to stop at once)`);
          await Promise.all(running.map((op) => ops.wait(op.id)));
        }
      });
    });
}

/** Resolves once `stop` has run after SIGINT or SIGTERM; a second signal ends the process at once. */
function untilStopped(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        // Work cut off here is undone from the journal by the next kumo command.
        say(`${signal} again: stopping now`);
        process.exit(130);
      }
      stopping = true;
      say(`${signal}: stopping`);
      stop().then(resolve, reject);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/**
 * A long-running kumo reconciles its records with libvirt as it starts (the journal was recovered
 * already, as by every command): what `kumo doctor` would find goes to the log, in the background
 * so an unreachable host does not hold the start up. Removing stays a deliberate `kumo doctor --fix`.
 */
async function reconcileOnStart(ctx: Context): Promise<void> {
  const r = await new DoctorService(ctx).check().catch((e: Error) => {
    say(`reconcile: could not compare records with libvirt: ${e.message}`);
    return undefined;
  });
  if (!r || !problemsIn(r)) return;
  for (const o of r.orphans) say(`reconcile: orphan domain ${o.name} (${o.uuid}) on ${o.host}, ${o.state}: kumo made it but has no record; \`kumo doctor --fix\` removes it`);
  for (const m of r.missing) say(`reconcile: instance ${m.instance} (project ${m.project}) has no domain on ${m.host}; \`kumo instance delete ${m.instance}\` removes the record`);
  for (const u of r.unfinished) say(`reconcile: "${u.operation}" from ${u.startedAt} is not fully undone; every start retries it (\`kumo doctor\`)`);
  for (const u of r.unreachable) say(`reconcile: host ${u.host} did not answer: ${u.error}`);
}
