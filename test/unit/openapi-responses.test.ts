import test from 'node:test';
import assert from 'node:assert/strict';
import { OpenApiResponses } from '../helpers/openapi-responses.js';

/** The API tests' answer check (test/helpers/openapi-responses.ts) on a document shaped like /openapi.json. */

const json = (ref: string) => ({ description: 'Default Response', content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } } });
const doc = {
  openapi: '3.0.3',
  paths: {
    '/api/v1/images/{name}': { get: { responses: { 200: json('Image'), 404: json('Error') } } },
    '/api/v1/images/build': { post: { responses: { 202: json('Accepted'), 400: json('Error') } } },
    '/api/v1/images': { get: { responses: { 200: { description: 'list', content: { 'application/json': { schema: { type: 'array', items: { $ref: '#/components/schemas/Image' } } } } } } } },
    '/api/v1/images/{name}/xml': { get: { responses: { 200: { description: 'xml', content: { 'application/xml': { schema: { type: 'string' } } } }, 204: { description: 'none' } } } },
  },
  components: {
    schemas: {
      Image: {
        type: 'object', additionalProperties: false, required: ['name', 'sizeGiB'],
        properties: { name: { type: 'string' }, sizeGiB: { type: 'integer', minimum: 1 }, os: { type: 'string', nullable: true } },
      },
      Accepted: { type: 'object', required: ['operation'], properties: { operation: { type: 'string' } } },
      Error: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } } } },
    },
  },
};
const check = new OpenApiResponses(doc);
const JSON_TYPE = 'application/json; charset=utf-8';

test('answers the document allows pass: $ref into components, nullable, arrays, error bodies, no body', () => {
  assert.equal(check.mismatch('GET', '/api/v1/images/tiny?x=1', 200, JSON_TYPE, { name: 'tiny', sizeGiB: 1, os: null }), undefined);
  assert.equal(check.mismatch('GET', '/api/v1/images', 200, JSON_TYPE, [{ name: 'a', sizeGiB: 2 }]), undefined);
  assert.equal(check.mismatch('GET', '/api/v1/images/nope', 404, JSON_TYPE, { error: { code: 'NOT_FOUND', message: 'no image' } }), undefined);
  assert.equal(check.mismatch('GET', '/api/v1/images/tiny/xml', 204, '', undefined), undefined);
});

test('a body the document does not allow fails, naming the route and what is wrong', () => {
  const wrong = check.mismatch('GET', '/api/v1/images/tiny', 200, JSON_TYPE, { name: 'tiny', sizeGiB: '1', extra: true });
  assert.match(wrong ?? '', /^GET \/api\/v1\/images\/\{name\} answered 200 with a body the document does not allow/);
  assert.match(wrong ?? '', /\/sizeGiB must be integer/);
  assert.match(wrong ?? '', /additional properties: extra/);
  assert.match(check.mismatch('GET', '/api/v1/images', 200, JSON_TYPE, [{ name: 'a' }]) ?? '', /\/0 must have required property 'sizeGiB'/);
  assert.match(check.mismatch('GET', '/api/v1/images/x', 404, JSON_TYPE, { message: 'flat' }) ?? '', /must have required property 'error'/);
});

test('a status or a content type the document does not declare fails', () => {
  assert.match(check.mismatch('GET', '/api/v1/images/tiny', 500, JSON_TYPE, { error: { code: 'X', message: 'y' } }) ?? '',
    /answered 500, a status the document does not declare \(it declares 200, 404\)/);
  assert.match(check.mismatch('GET', '/api/v1/images/tiny/xml', 200, JSON_TYPE, { xml: '<a/>' }) ?? '', /with application\/json, which the document does not declare/);
});

test('the most specific route wins, and what the document does not describe is not checked', () => {
  // /images/build is not /images/{name}: a 202 with an operation is right for it.
  assert.equal(check.mismatch('POST', '/api/v1/images/build', 202, JSON_TYPE, { operation: 'op-1' }), undefined);
  assert.match(check.mismatch('POST', '/api/v1/images/build', 200, JSON_TYPE, { operation: 'op-1' }) ?? '', /^POST \/api\/v1\/images\/build answered 200/);
  assert.equal(check.mismatch('GET', '/openapi.json', 200, JSON_TYPE, { anything: 1 }), undefined);
  assert.equal(check.mismatch('DELETE', '/api/v1/images/tiny', 404, JSON_TYPE, {}), undefined);
  assert.equal(check.mismatch('GET', '/api/v1/images/a/b/c', 200, JSON_TYPE, {}), undefined);
});
