import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settleVerdict, type DomainEnd } from '../../src/service/migration-settle.js';

/** Where a live migration interrupted by a crash or timeout left the domain, and what settling it does. */
const e = (state: DomainEnd['state'], job = false): DomainEnd => ({ state, job });

test('a migration job still running on the source is aborted first', () => {
  assert.deepEqual(settleVerdict(e('running', true), e('paused', true)), { do: 'abort' });
  assert.deepEqual(settleVerdict(e('paused', true), e('running')), { do: 'abort' });
});

test('on one host only: that host, resumed when the migration left it paused', () => {
  assert.deepEqual(settleVerdict(e('running'), e('missing')), { do: 'settle', host: 'from', resume: false });
  assert.deepEqual(settleVerdict(e('paused'), e('missing')), { do: 'settle', host: 'from', resume: true });
  assert.deepEqual(settleVerdict(e('missing'), e('running')), { do: 'settle', host: 'to', resume: false });
  assert.deepEqual(settleVerdict(e('missing'), e('paused')), { do: 'settle', host: 'to', resume: true });
});

test('on both after the move ended half-cleaned: the leftover copy goes', () => {
  assert.deepEqual(settleVerdict(e('shut off'), e('running')), { do: 'settle', host: 'to', remove: 'from', resume: false });
  assert.deepEqual(settleVerdict(e('running'), e('paused')), { do: 'settle', host: 'from', remove: 'to', resume: false });
  // One libvirt seen under two names: nothing moves, nothing is removed.
  assert.deepEqual(settleVerdict(e('running'), e('running')), { do: 'settle', host: 'from', resume: false });
});

test('what cannot be known yet is waited for: an unreachable source, a job on the destination', () => {
  assert.deepEqual(settleVerdict(e('unreachable'), e('running')), { do: 'wait' });
  assert.deepEqual(settleVerdict(e('running'), e('paused', true)), { do: 'wait' });
  assert.deepEqual(settleVerdict(e('shut off'), e('unreachable')), { do: 'wait' });
  assert.deepEqual(settleVerdict(e('missing'), e('unreachable')), { do: 'wait' });
  // A running source with no job: the destination cannot have it running as well.
  assert.deepEqual(settleVerdict(e('running'), e('unreachable')), { do: 'settle', host: 'from', resume: false });
  // On neither: the record stays (shown as missing).
  assert.deepEqual(settleVerdict(e('missing'), e('missing')), { do: 'settle', host: 'from', resume: false });
});
