/**
 * Matches request paths against Functions route templates (`customers/{customerId}`, `{id:guid}`,
 * optional `{x?}`, catch-all `{*rest}`), as the Functions host does under the `/api` prefix.
 */
export interface CompiledRoute {
  template: string;
  match(path: string): Record<string, string> | undefined;
}

/** A path segment that is not valid percent-encoded UTF-8 (`%zz`, `%E0%A4%A`, overlong `%C0%AF`). */
export class MalformedPath extends Error {}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new MalformedPath(
      `the path segment ${JSON.stringify(part.slice(0, 64))} is not valid percent-encoding`,
    );
  }
}

const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function compileRoute(template: string): CompiledRoute {
  const segments = template.split('/').filter((s) => s !== '');
  return {
    template,
    match(path) {
      const parts = path.split('/').filter((s) => s !== '');
      const params: Record<string, string> = {};
      for (let i = 0; i < segments.length; i++) {
        const segment = segments[i] as string;
        const part = parts[i];
        const param = /^\{(\*?)(\w+)(\?)?(?::(\w+))?\}$/.exec(segment);
        if (param === null) {
          if (part === undefined || part.toLowerCase() !== segment.toLowerCase()) return undefined;
          continue;
        }
        const [, catchAll, name = '', optional, constraint] = param;
        if (catchAll === '*') {
          params[name] = parts.slice(i).map(decode).join('/');
          return params;
        }
        if (part === undefined) {
          if (optional === '?') continue;
          return undefined;
        }
        const decoded = decode(part);
        if (constraint === 'guid' && !guid.test(decoded)) return undefined;
        if (constraint === 'int' && !/^-?\d+$/.test(decoded)) return undefined;
        params[name] = decoded;
      }
      return parts.length <= segments.length ? params : undefined;
    },
  };
}
