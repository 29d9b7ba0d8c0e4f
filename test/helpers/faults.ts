import assert from 'node:assert/strict';
import { assertNoDebris, debris, type Debris } from './debris.js';
import type { TestEnv } from './env.js';

/** A run the hook killed: ended by a signal (the runner says 128) after the hook's last words ("A|B": either operation). */
const killedAt = (r: { code: number; stderr: string }, step: number, operation: string) =>
  r.code === 128 && operation.split('|').some((o) => r.stderr.includes(`killed at step ${step} of "${o}`));

/**
 * Short libvirt timeouts for fault runs: a create killed while its define was in flight is
 * recovered by waiting out the call's timeout and grace, 2 x 20 s here instead of 3 minutes
 * (shorter ones made ordinary calls time out on a loaded 2-core machine).
 */
export const FAULT_ENV = { KUMO_LIBVIRT_TIMEOUT: '20' };

export interface KillWalk {
  /** The operation's journal name, or its start ("create instance"); "A|B" counts both operations' steps as one sequence. */
  operation: string;
  /** The kumo command that runs it. */
  run: string[];
  /** The command that follows a kill: its start recovers the journal (any command does). */
  next?: string[];
  /** Checks the world after the next command, when the kill came at `step`: undone or finished. */
  settled(step: number, before: Debris): Promise<void>;
  /** Undo what a completed run made, so the walk can go again from the same start. */
  reset(): Promise<void>;
  debrisOpts?: Parameters<typeof debris>[1];
  /** Variables for the run and the next command, over FAULT_ENV (a longer libvirt timeout for a walk with no kill during a libvirt call). */
  env?: NodeJS.ProcessEnv;
  /** Safety: a walk longer than this means the operation never completes. */
  maxSteps?: number;
}

/**
 * Kills kumo (SIGKILL, the test hook KUMO_TEST_DIE_AT) at step 1, 2, … of an operation until a
 * run completes, and after each kill runs the next command and checks what `settled` wants.
 * Returns how many step boundaries the operation has.
 */
export async function walkKills(env: TestEnv, w: KillWalk): Promise<number> {
  const before = await debris(env, w.debrisOpts);
  for (let step = 1; step <= (w.maxSteps ?? 40); step++) {
    const r = await env.cli(w.run, { env: { ...FAULT_ENV, ...w.env, KUMO_TEST_DIE_AT: `${w.operation}#${step}` } });
    if (!killedAt(r, step, w.operation)) {
      assert.equal(r.code, 0, `${w.operation}: step ${step} was never reached, and the run failed: ${r.stderr}`);
      assert.ok(step > 1, `${w.operation}: no step boundary was reached at all`);
      await w.reset();
      assertNoDebris(before, await debris(env, w.debrisOpts), `${w.operation}: after the complete run and its reset`);
      return step - 1;
    }
    const next = await env.cli(w.next ?? ['instance', 'list'], { env: { ...FAULT_ENV, ...w.env } });
    assert.equal(next.code, 0, `${w.operation} killed at step ${step}: the next command failed: ${next.stderr}`);
    await w.settled(step, before);
  }
  throw new Error(`${w.operation}: more than ${w.maxSteps ?? 40} steps; the run never completed`);
}
