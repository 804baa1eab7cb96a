import type { FunctionDefinition, HttpFunctionDefinition } from '../define.js';
import { httpFunction } from './endpoint.js';
import { buildOpenApiDocument } from './openapi.js';

/** Open like health: the API description holds no data. Built once, on first request. */
export function openApiFunction(definitions: () => FunctionDefinition[]): HttpFunctionDefinition {
  let document: Record<string, unknown> | undefined;
  return httpFunction({
    name: 'openapi',
    route: 'openapi.json',
    method: 'GET',
    summary: 'OpenAPI 3.1 description of this API, generated from the validation schemas',
    tags: ['operations'],
    auth: 'anonymous',
    responses: { 200: { description: 'The OpenAPI document' } },
    handle() {
      document ??= buildOpenApiDocument(definitions());
      return Promise.resolve({ status: 200, body: document });
    },
  });
}
