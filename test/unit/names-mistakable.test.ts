import test from 'node:test';
import assert from 'node:assert/strict';
import { parse, stringify } from 'yaml';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mistakableName } from '../../src/model/checks.js';
import { checkName } from '../../src/model/names.js';
import { DatacenterSchema } from '../../src/model/datacenter.js';
import { parseYamlFile } from '../../src/model/yaml-file.js';
import { KumoError } from '../../src/model/errors.js';

/**
 * Attack: virsh looks a domain up by ID, then UUID, then name (a network by UUID, then name).
 * An instance named "42" or like a UUID would let destroy/undefine/console reach a domain kumo
 * never made. Every kumo name is refused when libvirt could read it as an ID or a UUID.
 */

const UUID = '3f1c2a7e-9b4d-4e21-8a55-0c6d2e9f7b10';
const HOSTILE = ['42', '0', '007', UUID, UUID.toUpperCase(), UUID.replace(/-/g, ''), '3f1c2a7e9b4d-4e21-8a550c6d2e9f-7b10', 'a'.repeat(8) + '-' + 'b'.repeat(24)];
const FINE = ['web1', 'vm42', '42a', 'a42', 'centos01', 'web-1', `${UUID}0`, UUID.slice(0, 35), 'deadbeef', UUID.replace('3', 'g')];

test('all-digit and UUID-shaped names are mistakable; names with a letter outside hex or another length are not', () => {
  for (const n of HOSTILE) assert.ok(mistakableName(n), `${n} should be mistakable`);
  for (const n of FINE) assert.equal(mistakableName(n), undefined, `${n} should be fine`);
});

test('checkName refuses them for every kind (instances, networks, ...) with the reason and a fix', () => {
  for (const kind of ['instance', 'network', 'volume', 'share', 'flavor', 'load balancer']) {
    for (const n of HOSTILE.filter((h) => h.length <= 63)) {
      assert.throws(() => checkName(kind, n), (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT'
        && e.message === `${kind} name "${n}" is not allowed: ${mistakableName(n)}` && /pick a name with a letter/.test(e.fix ?? ''), `${kind} ${n}`);
    }
  }
  for (const n of FINE) assert.equal(checkName('instance', n), n);
});

const EXAMPLE = readFileSync(join(import.meta.dirname, '../../../examples/course-datacenter.yaml'), 'utf8');

test('a datacenter file with a mistakable name is refused at the key\'s line:col', () => {
  const withFlavor = (key: string) => {
    // any: the example's YAML is edited freely here; the schema under test judges its shape.
    const dc = parse(EXAMPLE) as any;
    dc.flavors = { [key]: { vcpus: 1, ram_mib: 512, disk_gib: 2 } };
    return stringify(dc);
  };
  for (const key of ['42', UUID]) {
    assert.throws(() => parseYamlFile(withFlavor(key), DatacenterSchema, 'dc.yaml', 'datacenter'),
      (e: unknown) => e instanceof KumoError && new RegExp(`^dc\\.yaml:\\d+:\\d+: flavors\\.${key}: "${key}" cannot be a name: it (is all digits|has the shape of a UUID)`).test(e.message),
      key);
  }
  assert.doesNotThrow(() => parseYamlFile(withFlavor('vm42'), DatacenterSchema, 'dc.yaml', 'datacenter'));
});
