import { Command } from 'commander';
import { context } from '../app.js';
import { type LogFormat, lineLog, logFormatOption } from '../log-lines.js';
import { parseWatchOptions } from '../../model/ha.js';
import { liveWatcher } from '../../service/ha/live.js';

/** `kumo ha run`: the host-failure watcher in the foreground, for a service manager and for tests. */
export function haCommand(): Command {
  const cmd = new Command('ha').description('high availability: instances of a dead hypervisor start on another (root on the machine)');
  cmd.command('run').description('watch every hypervisor; a host that misses its heartbeats is fenced, then its HA instances start elsewhere (runs until stopped; kumo serve runs the same unless --no-ha)')
    .option('--interval <seconds>', 'time between heartbeats', '1')
    .option('--misses <n>', 'missed heartbeats before a host is DOWN', '3')
    .addOption(logFormatOption())
    .action(async (o: { interval: string; misses: string; logFormat: LogFormat }) => {
      const opts = parseWatchOptions(o); // refused before anything runs
      const ctx = await context();
      const log = lineLog('ha', o.logFormat);
      const stop = new AbortController();
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { log.info(`${sig}: stopping the HA watcher`); stop.abort(); });
      log.info(`HA watcher: a heartbeat every ${opts.intervalMs / 1000} s, DOWN after ${opts.misses} missed`, { intervalMs: opts.intervalMs, misses: opts.misses });
      await liveWatcher(ctx, opts, { log: (line) => log.info(line) }).run(stop.signal);
    });
  return cmd;
}
