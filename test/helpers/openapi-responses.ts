import type { ValidateFunction } from 'ajv';
import { describeErrors, openApiSchemaValidator } from './json-schema.js';

/**
 * Checks API answers against the OpenAPI document the server publishes (/openapi.json), with
 * Ajv rather than the server's own serializer and zod schemas: the body of a JSON answer must
 * match the schema the document declares for its route and status, and a status the document
 * does not declare for a documented route is a mismatch too. Paths and methods the document
 * does not describe (/openapi.json itself, a test's own routes) are not checked.
 */

interface MediaType { schema?: object }
interface ResponseObject { description?: string; content?: Record<string, MediaType> }
interface Operation { responses?: Record<string, ResponseObject> }
export interface OpenApiDocument { paths: Record<string, Record<string, Operation>>; components?: Record<string, unknown> }

const METHODS = new Set(['get', 'put', 'post', 'delete', 'patch']);
/** The id the document's components are registered under; its "#/components/..." refs point there. */
const DOC_ID = 'kumo-openapi.json';

/** One documented route: its template, a matcher for concrete paths, and its number of parameters. */
interface Route { template: string; pattern: RegExp; params: number; operations: Record<string, Operation> }

export class OpenApiResponses {
  private readonly ajv = openApiSchemaValidator();
  private readonly routes: Route[];
  /** Compiled once per route, method, status and media type. */
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(doc: OpenApiDocument) {
    this.ajv.addSchema({ components: doc.components ?? {} }, DOC_ID);
    this.routes = Object.entries(doc.paths).map(([template, operations]) => ({
      template, operations,
      pattern: new RegExp(`^${template.split(/\{[^}]+\}/).map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&')).join('[^/]+')}$`),
      params: (template.match(/\{/g) ?? []).length,
    }));
  }

  /** Fetches the document of the server at `base` (it needs no token). */
  static async of(base: string): Promise<OpenApiResponses> {
    const res = await fetch(`${base}/openapi.json`);
    if (!res.ok) throw new Error(`GET ${base}/openapi.json answered ${res.status}: no OpenAPI document to check answers against`);
    return new OpenApiResponses(await res.json() as OpenApiDocument);
  }

  /**
   * What is wrong with an answer, or undefined when it matches (or the route is not documented).
   * `path` may carry a query string; `body` is the parsed JSON, undefined when there was none.
   */
  mismatch(method: string, path: string, status: number, contentType: string, body: unknown): string | undefined {
    const m = method.toLowerCase();
    if (!METHODS.has(m)) return undefined;
    const bare = path.split('?')[0]!;
    // The most specific template wins: /images/build before /images/{name}.
    const route = this.routes.filter((r) => r.operations[m] && r.pattern.test(bare)).sort((a, b) => a.params - b.params)[0];
    if (!route) return undefined;
    const where = `${method.toUpperCase()} ${route.template}`;
    const responses = route.operations[m]!.responses ?? {};
    const key = [String(status), `${String(status)[0]}XX`, 'default'].find((k) => responses[k]);
    if (!key) return `${where} answered ${status}, a status the document does not declare (it declares ${Object.keys(responses).join(', ')})`;
    if (body === undefined) return undefined;
    const mediaType = contentType.split(';')[0]!.trim();
    const media = responses[key]!.content?.[mediaType];
    if (!media) return `${where} answered ${status} with ${mediaType || 'no content type'}, which the document does not declare for that status`;
    if (!media.schema) return undefined;
    const id = `${where} ${key} ${mediaType}`;
    let validate = this.compiled.get(id);
    if (!validate) {
      validate = this.ajv.compile(JSON.parse(JSON.stringify(media.schema).replaceAll('"#/components/', `"${DOC_ID}#/components/`)) as object);
      this.compiled.set(id, validate);
    }
    return validate(body) ? undefined : `${where} answered ${status} with a body the document does not allow:\n${describeErrors(validate.errors)}`;
  }
}
