import test from 'node:test';
import assert from 'node:assert/strict';
import { local } from '../../src/exec/exec.js';
import { KumoError } from '../../src/model/errors.js';
import { missingTools, runTool } from '../../src/drivers/host/which.js';

test('a missing tool is named as the caller words it, with the package to install', async () => {
  await assert.rejects(runTool(local, 'kumo-no-such-tool', [], {}, { says: 'the tool is not installed on local', fix: 'apt-get install it' }),
    (e: unknown) => e instanceof KumoError && e.code === 'MISSING_DEPENDENCY' && e.message === 'the tool is not installed on local' && e.fix === 'apt-get install it');
  assert.equal((await runTool(local, 'sh', ['-c', 'echo hi'], {}, { says: 'x', fix: 'y' })).stdout, 'hi\n');
  assert.deepEqual(missingTools({ sh: 'dash', 'kumo-no-such-tool': 'kumo-pkg' }), [{ tool: 'kumo-no-such-tool', package: 'kumo-pkg' }]);
});
