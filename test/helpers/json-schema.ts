import { Ajv } from 'ajv';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';

/**
 * JSON Schema validation by Ajv: an oracle that is not kumo's own code (kumo checks its input
 * with zod and generates its published schemas from zod). Strict mode is off because the
 * schemas under test use keywords Ajv does not know (OpenAPI's `example`, zod's extras);
 * formats are not checked (none of kumo's schemas rely on one).
 */
export function schemaValidator(): Ajv2020 {
  return new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
}

/** The same for OpenAPI 3.0 schema objects (JSON Schema draft 4/7 with `nullable`, which Ajv knows). */
export function openApiSchemaValidator(): Ajv {
  return new Ajv({ strict: false, allErrors: true, validateFormats: false });
}

/** One line per error: where in the document, and what is wrong. */
export function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message ?? e.keyword}${e.keyword === 'additionalProperties' ? `: ${(e.params as { additionalProperty: string }).additionalProperty}` : ''}`).join('\n');
}

/** Validates `value`; returns the errors as text, or '' when it is valid. */
export function schemaErrors(validate: ValidateFunction, value: unknown): string {
  return validate(value) ? '' : describeErrors(validate.errors);
}
