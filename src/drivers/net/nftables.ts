import { type Executor, local } from '../../exec/exec.js';
import { KumoError, invalid } from '../../model/errors.js';
import { type NftFamily, type NftTable, type RuleCounter, type ApplyOutcome, MARK } from './nftables/types.js';
import { checkFamily, checkName, validateTable } from './nftables/validate.js';
import { renderDelete, renderReplace } from './nftables/render.js';
import { listingMatches, parseListing, parseCounters } from './nftables/listing.js';

/**
 * kumo's nftables driver: typed tables rendered to nft's text syntax and loaded atomically with
 * `nft -f -`. kumo owns whole tables (one per purpose, named by the caller) and replaces only
 * those; tables of libvirt, docker or the user are never read into, flushed or deleted.
 *
 * Every value is checked against a closed set or a strict pattern before it is rendered, and
 * the only quoted strings (interface names, comments, log prefixes) exclude quotes, backslashes
 * and newlines: user text can never change the ruleset's structure.
 */

// The driver's vocabulary, for callers: types, checks, rendering and nft's listing.
export type * from './nftables/types.js';
export { checkAddr, checkIfname, checkName, checkPort, validateTable } from './nftables/validate.js';
export { renderDelete, renderReplace, renderRule, renderTable, tableMark } from './nftables/render.js';
export { listingMatches, parseCounters, parseListing, type ListedChain, type ListedTable } from './nftables/listing.js';

// ---------------------------------------------------------------------------------------------

/** kumo's tables on one node (this machine, a network namespace, or a host over ssh). */
export class Nftables {
  constructor(private readonly exec: Executor = local) {}

  /** `nft -s list table` (without counter values), or undefined when the table does not exist. */
  async list(family: NftFamily, name: string): Promise<string | undefined> {
    checkFamily(family);
    checkName(name, 'table');
    const r = await this.exec.run('nft', ['-s', 'list', 'table', family, name], { allowFailure: true });
    if (r.code === 0) return r.stdout;
    if (/No such file or directory/.test(r.stderr)) return undefined;
    throw this.failed(`nft list table ${family} ${name}`, r.stderr);
  }

  /**
   * Replaces these kumo tables in one transaction (all or nothing); other tables stay untouched.
   * A table whose live contents already match is left alone, so its counters keep counting
   * (`force` replaces it anyway, which restarts its counters).
   * A table of that name that kumo did not make is refused (ALREADY_EXISTS), never replaced.
   */
  async apply(tables: NftTable | readonly NftTable[], options: { force?: boolean } = {}): Promise<ApplyOutcome[]> {
    const list: readonly NftTable[] = Array.isArray(tables) ? tables : [tables as NftTable];
    const seen = new Set<string>();
    for (const t of list) {
      validateTable(t);
      const key = `${t.family} ${t.name}`;
      if (seen.has(key)) throw invalid(`table ${key} is given twice`, 'merge the two into one table or rename one');
      seen.add(key);
    }
    const outcomes: ApplyOutcome[] = [];
    const changed: NftTable[] = [];
    for (const t of list) {
      const live = await this.owned(t.family, t.name, 'apply');
      const same = live !== undefined && !options.force && listingMatches(t, parseListing(live));
      outcomes.push({ family: t.family, name: t.name, changed: !same });
      if (!same) changed.push(t);
    }
    if (changed.length) await this.load(renderReplace(changed), changed.map((t) => `${t.family} ${t.name}`).join(', '));
    return outcomes;
  }

  /** Whether the live table is this spec already (what apply would leave alone). */
  async matches(t: NftTable): Promise<boolean> {
    validateTable(t);
    const live = await this.list(t.family, t.name);
    return live !== undefined && listingMatches(t, parseListing(live));
  }

  /** Deletes kumo's table; false when it did not exist. A table kumo did not make is refused. */
  async delete(family: NftFamily, name: string): Promise<boolean> {
    const live = await this.owned(family, name, 'delete');
    if (live === undefined) return false;
    await this.load(renderDelete([{ family, name }]), `${family} ${name}`);
    return true;
  }

  /** Packets and bytes per rule id, read from `nft -j list table`; [] when the table does not exist. */
  async counters(family: NftFamily, name: string): Promise<RuleCounter[]> {
    checkFamily(family);
    checkName(name, 'table');
    const r = await this.exec.run('nft', ['-j', 'list', 'table', family, name], { allowFailure: true });
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr)) return [];
      throw this.failed(`nft -j list table ${family} ${name}`, r.stderr);
    }
    return parseCounters(r.stdout);
  }

  /** The live table's text when it is kumo's (or undefined when absent); refuses anyone else's. */
  private async owned(family: NftFamily, name: string, doing: 'apply' | 'delete'): Promise<string | undefined> {
    const live = await this.list(family, name);
    if (live !== undefined && !parseListing(live).comment?.startsWith(MARK)) {
      throw new KumoError(doing === 'apply' ? 'ALREADY_EXISTS' : 'IN_USE',
        `table ${family} ${name} exists on ${this.exec.description} and was not made by kumo: kumo will not ${doing === 'apply' ? 'replace' : 'delete'} it`,
        'give kumo\'s table another name (e.g. kumo-edge), or remove that table yourself if it is really unused');
    }
    return live;
  }

  private async load(text: string, what: string): Promise<void> {
    const r = await this.exec.run('nft', ['-f', '-'], { input: text, allowFailure: true });
    if (r.code !== 0) throw this.failed(`loading table ${what}`, r.stderr);
  }

  private failed(what: string, stderr: string): KumoError {
    const detail = stderr.trim().split('\n').slice(0, 6).join('\n');
    return new KumoError('COMMAND_FAILED', `nft refused ${what} on ${this.exec.description} (nothing was changed): ${detail}`,
      'the kernel may lack an nftables feature named above; check `nft --version` and the kernel\'s nf_tables options');
  }
}
