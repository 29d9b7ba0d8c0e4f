import { invalid, KumoError } from './errors.js';

/**
 * What a project may be capped on (issue 15). A cap that is not set is no cap. Use is computed
 * from the store, never counted separately: it cannot drift from what exists.
 */
export const QUOTAS = ['instances', 'vcpus', 'ramMiB', 'diskGiB', 'volumes', 'networks', 'shares'] as const;
export type QuotaName = (typeof QUOTAS)[number];

/** The caps a project has; a name left out is not capped. */
export type QuotaLimits = Partial<Record<QuotaName, number>>;
/** A change of caps: a number sets it, null lifts it, a name left out stays as it is. */
export type QuotaChange = Partial<Record<QuotaName, number | null>>;
export type QuotaUse = Record<QuotaName, number>;

interface QuotaInfo {
  /** The CLI's flag (and the API's field is the quota's name). */
  flag: string;
  /** How to say an amount of it: (1) "instance", (2) "instances". */
  one: string;
  many: string;
  /** The largest cap accepted: a bigger number is a typo more likely than intent. */
  max: number;
  /** What to do to get room, besides raising the cap. */
  free: string;
}

export const QUOTA_INFO: Record<QuotaName, QuotaInfo> = {
  instances: { flag: '--max-instances', one: 'instance', many: 'instances', max: 10_000, free: 'delete one' },
  vcpus: { flag: '--max-vcpus', one: 'vCPU', many: 'vCPUs', max: 100_000, free: 'delete an instance' },
  ramMiB: { flag: '--max-ram', one: 'MiB of RAM', many: 'MiB of RAM', max: 100_000_000, free: 'delete an instance' },
  diskGiB: { flag: '--max-disk', one: 'GiB of disk', many: 'GiB of disk', max: 10_000_000, free: 'delete an instance or a volume' },
  volumes: { flag: '--max-volumes', one: 'volume', many: 'volumes', max: 10_000, free: 'delete one' },
  networks: { flag: '--max-networks', one: 'network', many: 'networks', max: 1_000, free: 'delete one' },
  shares: { flag: '--max-shares', one: 'share', many: 'shares', max: 1_000, free: 'delete one' },
};

const amount = (q: QuotaName, n: number) => `${n} ${n === 1 ? QUOTA_INFO[q].one : QUOTA_INFO[q].many}`;

/** A cap as given (CLI flag or API field): a whole number from 0 to the quota's max. */
export function checkLimit(q: QuotaName, value: number, typed?: string): number {
  const { flag, max } = QUOTA_INFO[q];
  if (!Number.isInteger(value) || value < 0 || value > max) {
    const got = typed !== undefined ? JSON.stringify(typed) : Number.isNaN(value) ? 'not a number' : String(value);
    throw invalid(`${flag} must be a whole number from 0 to ${max}, got ${got}`,
      `pass e.g. ${flag} 4; leave it out for no cap`);
  }
  return value;
}

/** What a create would exceed: which quota, its cap, the use now and what the create needs. */
export interface QuotaExcess { quota: QuotaName; limit: number; use: number; need: number }

/** The first quota that `need` more would exceed, if any. */
export function firstExcess(limits: QuotaLimits, use: QuotaUse, need: Partial<QuotaUse>): QuotaExcess | undefined {
  for (const q of QUOTAS) {
    const limit = limits[q];
    const more = need[q] ?? 0;
    if (limit !== undefined && more > 0 && use[q] + more > limit) return { quota: q, limit, use: use[q], need: more };
  }
  return undefined;
}

/** The refusal: the quota, its cap and current use, and the fix (make room, or an admin raises it). */
export function quotaExceeded(project: string, e: QuotaExcess): KumoError {
  const needs = e.need === 1 && e.quota === 'instances' ? '' : `; this needs ${amount(e.quota, e.need)}`;
  return new KumoError('QUOTA_EXCEEDED',
    `project ${project} allows ${amount(e.quota, e.limit)} and has ${e.use}${needs} (quota ${e.quota})`,
    `${e.use > 0 ? `${QUOTA_INFO[e.quota].free}, or ` : ''}an admin raises it: kumo project set ${project} ${QUOTA_INFO[e.quota].flag} ${e.use + e.need}`);
}
