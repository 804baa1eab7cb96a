import { describe, expect, it } from 'vitest';
import { definitions } from '../../functions/definitions.js';
import { buildOpenApiDocument } from '../../functions/http/openapi.js';

/**
 * The SPLA and group-membership routes describe what they answer, not only what they take: each success
 * response carries a JSON schema in the OpenAPI document (the SPLA e2e file checks real answers against
 * the same schemas), and the SPLA report documents its CSV form too.
 */
type Schema = { type?: string; properties?: object; anyOf?: Schema[]; oneOf?: Schema[] };
type Operation = {
  tags?: string[];
  responses: Record<string, { content?: Record<string, { schema?: Schema }> }>;
};

/** An object with its properties, or a union (an operation's kinds) of such objects. */
function describesObject(schema: Schema | undefined): boolean {
  if (schema === undefined) return false;
  const union = schema.anyOf ?? schema.oneOf;
  if (union !== undefined) return union.length > 0 && union.every(describesObject);
  return schema.type === 'object' && schema.properties !== undefined;
}

describe('response schemas', () => {
  const doc = buildOpenApiDocument(definitions) as { paths: Record<string, Record<string, Operation>> };
  const routes = Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({
      route: `${method.toUpperCase()} ${path}`,
      operation,
    })),
  );
  const ours = routes.filter(
    ({ route, operation }) =>
      operation.tags?.includes('spla') === true || /\/users\/\{userId\}\/groups/.test(route),
  );

  it('cover the SPLA and group-membership routes (so the check below is not vacuous)', () => {
    expect(ours.map((r) => r.route)).toEqual(
      expect.arrayContaining([
        'GET /reports/spla',
        'POST /reports/spla/{month}/close',
        'PUT /customers/{customerId}/spla/rules/{productId}',
        'PUT /customers/{customerId}/users/{userId}/groups/{groupId}',
      ]),
    );
    expect(ours.length).toBeGreaterThanOrEqual(12);
  });

  it('give every success response of those routes an object schema with its properties', () => {
    const missing: string[] = [];
    for (const { route, operation } of ours)
      for (const [status, response] of Object.entries(operation.responses)) {
        if (!/^2\d\d$/.test(status) || status === '204') continue;
        if (!describesObject(response.content?.['application/json']?.schema))
          missing.push(`${route} ${status}`);
      }
    expect(missing).toEqual([]);
  });

  it('document the SPLA report as CSV as well as JSON', () => {
    const report = ours.find((r) => r.route === 'GET /reports/spla');
    expect(Object.keys(report?.operation.responses['200']?.content ?? {})).toEqual([
      'application/json',
      'text/csv',
    ]);
  });
});
