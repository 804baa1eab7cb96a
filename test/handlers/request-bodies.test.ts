import { describe, expect, it } from 'vitest';
import { definitions } from '../../functions/definitions.js';
import { buildOpenApiDocument } from '../../functions/http/openapi.js';

/**
 * Every route refuses unknown fields the same way: each body schema is a strict object at every depth.
 * Read from the OpenAPI document, which is generated from the very schemas that validate requests, so a
 * route added later with a plain `z.object` body fails here by name.
 */
type Node = Record<string, unknown>;

function openObjects(node: unknown, path: string, out: string[]): void {
  if (Array.isArray(node)) {
    node.forEach((item, i) => openObjects(item, `${path}[${i}]`, out));
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const schema = node as Node;
  if (schema.type === 'object' && schema.properties !== undefined && schema.additionalProperties !== false)
    out.push(path);
  for (const [key, value] of Object.entries(schema)) openObjects(value, `${path}.${key}`, out);
}

describe('request bodies', () => {
  const doc = buildOpenApiDocument(definitions) as {
    paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>>;
  };
  const bodies = Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).flatMap(([method, operation]) =>
      operation.requestBody === undefined
        ? []
        : [
            {
              route: `${method.toUpperCase()} ${path}`,
              schema: operation.requestBody.content['application/json']?.schema,
            },
          ],
    ),
  );

  it('exist on the routes that take one (so the check below is not vacuous)', () => {
    expect(bodies.map((b) => b.route)).toEqual(
      expect.arrayContaining(['PUT /customers/{customerId}', 'POST /customers/{customerId}/users']),
    );
  });

  it('are strict objects at every depth on every route: no open object anywhere', () => {
    const open: string[] = [];
    for (const { route, schema } of bodies) openObjects(schema, route, open);
    expect(open).toEqual([]);
  });
});
