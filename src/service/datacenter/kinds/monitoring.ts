import { MonitoringService } from '../../monitoring.js';
import type { Kind } from '../kind.js';

/** The metrics collector kept running in the background with the file's interval and retention. */
export const monitoringKind: Kind = {
  kind: 'monitoring',
  exclusive: false,
  pruned: 'no longer in the file',
  wanted: (dc) => (dc.monitoring ? [dc.name] : []),

  async diff({ ctx, dc }) {
    if (!dc.monitoring) return [];
    const collector = await new MonitoringService(ctx).collectorDaemon();
    const want = { intervalS: dc.monitoring.interval, retention: dc.monitoring.retention };
    const owned = ctx.datacenterResources.owner('monitoring', dc.name) !== undefined;
    if (!collector) {
      return [{ action: owned ? 'update' : 'create', kind: 'monitoring', name: dc.name, why: `collector every ${want.intervalS} s, history kept ${want.retention}${owned ? ' (it does not run)' : ''}` }];
    }
    if (JSON.stringify(collector.settings) === JSON.stringify(want)) return [];
    return [{ action: 'update', kind: 'monitoring', name: dc.name,
      why: `collector runs every ${collector.settings.intervalS} s, kept ${collector.settings.retention}; should be ${want.intervalS} s, ${want.retention}` }];
  },

  async apply(_c, { ctx, dc }) {
    const settings = { intervalS: dc.monitoring!.interval, retention: dc.monitoring!.retention };
    await new MonitoringService(ctx).startCollector(settings);
    return settings;
  },

  async remove(_name, _applied, { ctx }) {
    await new MonitoringService(ctx).stopCollector();
  },
};
