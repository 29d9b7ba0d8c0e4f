import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { schemaErrors, schemaValidator } from '../helpers/json-schema.js';

/**
 * The published JSON Schema of the datacenter file (docs/datacenter.schema.json, generated from
 * kumo's zod schema) checked by a validator that is not zod: every example file validates
 * against it, and broken files do not.
 */

const ROOT = resolve(import.meta.dirname, '../../..');
const schema = JSON.parse(readFileSync(join(ROOT, 'docs/datacenter.schema.json'), 'utf8')) as object;
const validate = schemaValidator().compile(schema);
const examples = readdirSync(join(ROOT, 'examples')).filter((f) => /\.ya?ml$/.test(f));
const course = () => parse(readFileSync(join(ROOT, 'examples/course-datacenter.yaml'), 'utf8')) as Record<string, any>; // any: edited below

test('there are example datacenter files to check', () => {
  assert.ok(examples.length >= 4, examples.join(', '));
});

for (const file of examples) {
  test(`examples/${file} validates against docs/datacenter.schema.json`, () => {
    const doc: unknown = parse(readFileSync(join(ROOT, 'examples', file), 'utf8'));
    assert.equal(schemaErrors(validate, doc), '');
  });
}

test('broken datacenter files do not validate against the published schema', () => {
  const broken: [string, (d: Record<string, any>) => void, RegExp][] = [ // any: documents edited by hand
    ['an unknown top-level key', (d) => { d.instancez = {}; }, /additional properties: instancez/],
    ['no name', (d) => { delete d.name; }, /required property 'name'/],
    ['a name in capitals', (d) => { d.name = 'Course'; }, /\/name must match pattern/],
    ['a count as text', (d) => { d.instances.web.count = 'four'; }, /\/instances\/web\/count must be integer/],
    ['a count over the limit', (d) => { d.instances.web.count = 65; }, /\/instances\/web\/count must be <= 64/],
    ['a mount without its path', (d) => { delete d.instances.web.mount.path; }, /\/instances\/web\/mount must have required property 'path'/],
    ['an unknown placement', (d) => { d.instances.web.placement = 'random'; }, /\/instances\/web\/placement must be equal to one of the allowed values/],
    ['a load balancer port as text', (d) => { d.loadbalancers.front.frontend.port = 'http'; }, /\/loadbalancers\/front\/frontend\/port must be/],
  ];
  for (const [what, edit, why] of broken) {
    const doc = course();
    edit(doc);
    const errors = schemaErrors(validate, doc);
    assert.match(errors, why, `${what}: ${errors || 'validated'}`);
  }
});
