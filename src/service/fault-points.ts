/**
 * Fault injection for the fault tests (test/integration/faults-*.test.ts). With
 * KUMO_TEST_DIE_AT="OPERATION#N" set, this process kills itself with SIGKILL at the N-th step
 * boundary of an operation whose name starts with OPERATION (e.g. "create instance#3"): exactly
 * what `kill -9` between two steps does, with the step chosen. The tests walk N up from 1 until
 * the operation completes, so every boundary is tried without the tests knowing the steps.
 * Unset (always, outside the tests), a boundary costs one comparison.
 */
const target = parse(process.env.KUMO_TEST_DIE_AT);
let reached = 0;

/** "A|B#N": the boundaries of operations starting with A or B count as one sequence (apply and the creates it runs). */
function parse(value: string | undefined): { operations: string[]; step: number } | undefined {
  const m = value ? /^(.+)#([1-9]\d*)$/.exec(value) : null;
  return m ? { operations: m[1]!.split('|'), step: Number(m[2]) } : undefined;
}

/** A step of `operation` is done and journaled; the next has not begun. */
export function stepBoundary(operation: string): void {
  if (!target || !target.operations.some((o) => operation.startsWith(o))) return;
  reached += 1;
  if (reached !== target.step) return;
  process.stderr.write(`kumo: KUMO_TEST_DIE_AT: killed at step ${reached} of "${operation}"\n`);
  process.kill(process.pid, 'SIGKILL');
}
