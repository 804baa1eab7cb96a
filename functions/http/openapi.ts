import { z } from 'zod';
import type { FunctionDefinition } from '../define.js';
import type { AnyEndpoint } from './endpoint.js';

/**
 * OpenAPI 3.1 generated from the very zod schemas that validate requests, so the document cannot drift
 * from what the API accepts. Zod's JSON Schema output is draft 2020-12, which is what OpenAPI 3.1 uses.
 */
const problemSchema = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail', 'code', 'correlationId'],
  properties: {
    type: { type: 'string', format: 'uri' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string' },
    correlationId: { type: 'string' },
    errors: {
      type: 'array',
      items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } },
    },
  },
};

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const out = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  delete out.$schema;
  return out;
}

function parameters(endpoint: AnyEndpoint): unknown[] {
  const out: unknown[] = [];
  const add = (schema: z.ZodType | undefined, location: 'path' | 'query'): void => {
    if (schema === undefined) return;
    const json = jsonSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
    for (const [name, property] of Object.entries(json.properties ?? {})) {
      out.push({
        name,
        in: location,
        required: location === 'path' || (json.required ?? []).includes(name),
        schema: property,
      });
    }
  };
  add(endpoint.params, 'path');
  add(endpoint.query, 'query');
  for (const [name, header] of Object.entries(endpoint.requestHeaders ?? {})) {
    out.push({
      name,
      in: 'header',
      required: header.required ?? false,
      description: header.description,
      schema: { type: 'string' },
    });
  }
  return out;
}

export function buildOpenApiDocument(
  definitions: FunctionDefinition[],
  serverUrl = '/api',
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const definition of definitions) {
    if (definition.kind !== 'http') continue;
    const endpoint = definition.endpoint;
    const path = `/${definition.route.replace(/\{(\w+)(:[^}]*)?\}/g, '{$1}')}`;
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries(endpoint.responses)) {
      const content: Record<string, unknown> = {
        ...(response.schema === undefined
          ? {}
          : { 'application/json': { schema: jsonSchema(response.schema, 'output') } }),
      };
      for (const mediaType of response.text ?? []) content[mediaType] = { schema: { type: 'string' } };
      responses[status] = {
        description: response.description,
        ...(Object.keys(content).length === 0 ? {} : { content }),
      };
    }
    responses.default = {
      description: 'Error (RFC 9457 problem details with a stable code)',
      content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
    };
    paths[path] ??= {};
    paths[path][endpoint.method.toLowerCase()] = {
      operationId: endpoint.name,
      summary: endpoint.summary,
      ...(endpoint.tags === undefined ? {} : { tags: endpoint.tags }),
      parameters: parameters(endpoint),
      ...(endpoint.body === undefined
        ? {}
        : {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: jsonSchema(endpoint.body, 'input') } },
            },
          }),
      responses,
      security: endpoint.auth === 'anonymous' ? [] : [{ apiKey: [] }, { entra: [] }],
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'atria-m365',
      version: '0.1.0',
      description:
        'Microsoft 365 engine behind Atria: identities in Entra ID and on-prem AD, CSP licensing and NCE seats.',
    },
    servers: [{ url: serverUrl }],
    paths,
    components: {
      schemas: { Problem: problemSchema },
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'x-functions-key' },
        entra: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'Entra ID app-only token for this API',
        },
      },
    },
  };
}
