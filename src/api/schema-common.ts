import { z } from 'zod';
import { LIMITS, TIMEOUT_SECONDS } from '../model/sizes.js';

/**
 * What every schema of the API shares (schemas.ts has the bodies): the registry that names
 * components in /openapi.json, the error body, route parameters and the small field builders.
 */
export const registry = z.registry<{ id: string; description?: string }>();

export function named<T extends z.ZodType>(id: string, schema: T, description?: string): T {
  registry.add(schema, { id, ...(description ? { description } : {}) });
  return schema;
}

export const whole = (what: keyof typeof LIMITS, description: string) =>
  z.number().int().min(LIMITS[what].min).max(LIMITS[what].max).describe(description);
/** A wait or grace period: the bounds `--timeout` has in the CLI. */
export const seconds = z.number().int().min(TIMEOUT_SECONDS.min).max(TIMEOUT_SECONDS.max);
export const name = (what: string) => z.string().min(1).max(63).describe(`the ${what}'s name`);
export const timestamp = z.string().describe('ISO 8601 time');

// ---------------------------------------------------------------------------------------- errors

export const ErrorBody = named('Error', z.object({
  error: z.object({
    code: z.string().describe('stable code for programs: INVALID_INPUT, NOT_FOUND, ALREADY_EXISTS, IN_USE, UNAUTHORIZED, ...'),
    message: z.string().describe('what is wrong, for a person'),
    fix: z.string().optional().describe('how to fix it, where kumo knows'),
    fields: z.array(z.string()).optional().describe('the request fields that are wrong, e.g. body.vcpus'),
    requestId: z.string().optional().describe('when the detail was withheld (INTERNAL, COMMAND_FAILED): the request\'s id, under which the server log and the audit log have it'),
  }),
}), 'every error answer');

/** The error answers a route can give, all with the same body. */
export function errors(...codes: (400 | 401 | 403 | 404 | 409 | 429 | 500 | 502 | 503 | 504)[]) {
  const out: Partial<Record<400 | 401 | 403 | 404 | 409 | 429 | 500 | 502 | 503 | 504, typeof ErrorBody>> = {};
  for (const c of [401, ...codes] as const) out[c] = ErrorBody;
  return out;
}

// ------------------------------------------------------------------------------ params and common

export const NameParams = z.object({ name: z.string().describe('the resource\'s name') });
export const IdParams = z.object({ id: z.string().describe('the operation\'s id') });
export const InstanceParams = z.object({ instance: z.string().describe('the instance\'s name') });
export const SnapshotParams = z.object({ instance: z.string().describe('the instance\'s name'), name: z.string().describe('the snapshot\'s name') });
export const NoContent = z.undefined().describe('done; no body');

/**
 * A body the client may leave out (stop, detach, snapshot, revert). Fastify hands a missing
 * body to the validator as null; the OpenAPI document marks such a body not required.
 */
export const optionalBody = <T extends z.ZodType>(schema: T) => schema.nullish();
