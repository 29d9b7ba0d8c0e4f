import test from 'node:test';
import assert from 'node:assert/strict';
import { BenchArgsError, benchOptions, type BenchSpec } from '../../bench/common.js';

/**
 * The one parser every bench script reads its options with: the same whole-number checks, the
 * same messages, the usage after every mistake, --help for all.
 */

const USAGE = 'usage: node dist/bench/x.js [options]';
const SPEC = {
  runs: { kind: 'whole', min: 1, max: 50, default: 3 },
  warmup: { kind: 'whole', min: 0, max: 100, default: 2 },
  parallel: { kind: 'whole', min: 1, max: 16 },
  bytes: { kind: 'whole', min: 100 },
  counts: { kind: 'wholes', min: 1, max: 20_000, sort: true, default: [10, 100, 1000] },
  connections: { kind: 'wholes', min: 1, max: 256, default: [1, 8] },
  sizes: { kind: 'wholes', min: 1, max: 16, default: [1, 2, 4, 8], none: true, bare: '' },
  workdir: { kind: 'text', default: '/var/tmp' },
  json: { kind: 'text', bare: 'bench.json' },
  baseline: { kind: 'text' },
  'skip-apply': { kind: 'flag' },
} as const satisfies BenchSpec;

const parse = (...argv: string[]) => {
  const v = benchOptions(argv, SPEC, USAGE);
  assert.notEqual(v, 'help');
  return v as Exclude<typeof v, 'help'>;
};

/** The mistake's message: what is wrong, then the usage. */
const mistake = (argv: string[], problem: string) => assert.throws(() => benchOptions(argv, SPEC, USAGE), (e: unknown) => {
  assert.ok(e instanceof BenchArgsError, String(e));
  assert.equal(e.problem, problem);
  assert.equal(e.message, `${problem}\n${USAGE}`);
  return true;
});

test('nothing given: every default, flags off, options without a default undefined; lists are fresh copies', () => {
  const v = parse();
  assert.deepEqual(v, {
    runs: 3, warmup: 2, parallel: undefined, bytes: undefined, counts: [10, 100, 1000], connections: [1, 8], sizes: [1, 2, 4, 8],
    workdir: '/var/tmp', json: undefined, baseline: undefined, 'skip-apply': false,
  });
  v.counts.push(5);
  assert.deepEqual(parse().counts, [10, 100, 1000]);
});

test('whole numbers: --x N and --x=N, the bounds included, the last one given wins', () => {
  assert.equal(parse('--runs', '1').runs, 1);
  assert.equal(parse('--runs=50').runs, 50);
  assert.equal(parse('--warmup', '0').warmup, 0);
  assert.equal(parse('--runs', '4', '--runs', '7').runs, 7);
  assert.equal(parse('--parallel', '16').parallel, 16);
  assert.equal(parse('--bytes', '1000000000000').bytes, 1_000_000_000_000);
});

test('whole numbers out of bounds or not whole: the option, its bounds and what was given', () => {
  mistake(['--runs', '0'], '--runs must be a whole number from 1 to 50, got "0"');
  mistake(['--runs', '51'], '--runs must be a whole number from 1 to 50, got "51"');
  mistake(['--runs', '2.5'], '--runs must be a whole number from 1 to 50, got "2.5"');
  mistake(['--runs', 'three'], '--runs must be a whole number from 1 to 50, got "three"');
  mistake(['--runs='], '--runs must be a whole number from 1 to 50, got ""');
  mistake(['--warmup', '-1'], '--warmup must be a whole number from 0 to 100, got "-1"');
  mistake(['--bytes', '99'], '--bytes must be a whole number of at least 100, got "99"');
});

test('lists of whole numbers: sorted when the option says so, in the order given otherwise, each one checked', () => {
  assert.deepEqual(parse('--counts', '1000,5,20').counts, [5, 20, 1000]);
  assert.deepEqual(parse('--connections', '8,1,64').connections, [8, 1, 64]);
  assert.deepEqual(parse('--sizes', '1, 2').sizes, [1, 2]);
  mistake(['--counts', '10,x'], '--counts must be a whole number from 1 to 20000, got "x"');
  mistake(['--counts', '10,,20'], '--counts must be a whole number from 1 to 20000, got ""');
  mistake(['--connections', '1,257'], '--connections must be a whole number from 1 to 256, got "257"');
  mistake(['--counts', ''], '--counts must be a whole number from 1 to 20000, got ""');
});

test('a list that may be empty: "none", "" and the option alone are the empty list', () => {
  assert.deepEqual(parse('--sizes', 'none').sizes, []);
  assert.deepEqual(parse('--sizes', '').sizes, []);
  assert.deepEqual(parse('--sizes').sizes, []);
  assert.deepEqual(parse('--sizes', '--runs', '2'), { ...parse('--runs', '2'), sizes: [] });
});

test('free text: as given; a bare value when the option comes alone; never empty', () => {
  assert.equal(parse('--workdir', '/srv/b').workdir, '/srv/b');
  assert.equal(parse('--baseline=old/main.js').baseline, 'old/main.js');
  assert.equal(parse('--json', 'out.json').json, 'out.json');
  assert.equal(parse('--json').json, 'bench.json');
  assert.equal(parse('--json', '--runs', '2').json, 'bench.json');
  mistake(['--workdir', ''], '--workdir needs a value');
});

test('flags: on when given, and they take no value', () => {
  assert.equal(parse('--skip-apply')['skip-apply'], true);
  mistake(['--skip-apply=yes'], '--skip-apply takes no value');
});

test('a missing value is a mistake, also when another option follows', () => {
  mistake(['--runs'], '--runs needs a value');
  mistake(['--baseline'], '--baseline needs a value');
  mistake(['--counts', '--runs', '2'], '--counts needs a value');
  mistake(['--runs', '-h'], '--runs needs a value');
});

test('unknown options and stray arguments are mistakes that name them', () => {
  mistake(['--no-such-option'], 'unknown option --no-such-option');
  mistake(['--runs', '2', '-x'], 'unknown option -x');
  mistake(['--constructor'], 'unknown option --constructor');
  mistake(['5'], 'unexpected argument "5"');
  mistake(['--runs', '2', '3'], 'unexpected argument "3"');
});

test('--help and -h answer "help" whatever else was given', () => {
  assert.equal(benchOptions(['--help'], SPEC, USAGE), 'help');
  assert.equal(benchOptions(['-h'], SPEC, USAGE), 'help');
  assert.equal(benchOptions(['--runs', '2', '--help'], SPEC, USAGE), 'help');
  assert.equal(benchOptions(['--runs', '99', '--help'], SPEC, USAGE), 'help');
});

test('a spec may not declare help: it is every script\'s own', () => {
  assert.throws(() => benchOptions([], { help: { kind: 'flag' } }, USAGE), /every bench script's own/);
});
