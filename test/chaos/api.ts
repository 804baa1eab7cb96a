/**
 * The driver's HTTP client: what Atria would do against a flaky deployment. A 5xx or a dropped
 * connection (a killed worker, storage restarting) is retried with the same request and the same
 * `Idempotency-Key`, up to a deadline, and so is a 429 after its Retry-After; other 4xx answers come
 * back as they are.
 */
export interface Answer {
  status: number;
  body: Record<string, unknown>;
  /** Attempts that met a 5xx or a network error before this answer. */
  retried: number;
}

export async function call(
  baseUrl: string,
  key: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
  deadlineInMs = 45_000,
): Promise<Answer> {
  const deadline = Date.now() + deadlineInMs;
  let retried = 0;
  let last: string;
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: {
          'x-functions-key': key,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(70_000),
      });
      const text = await response.text();
      // Like Atria: a 429 is retried after its Retry-After (capped), not reported as a refusal.
      if (response.status === 429 && Date.now() < deadline) {
        const after = Number(response.headers.get('retry-after') ?? '1');
        retried += 1;
        await new Promise((r) =>
          setTimeout(r, Math.min(5000, Math.max(100, (Number.isFinite(after) ? after : 1) * 1000))),
        );
        continue;
      }
      if (response.status < 500) {
        let parsed: unknown = {};
        try {
          parsed = text === '' ? {} : JSON.parse(text);
        } catch {
          parsed = { text };
        }
        const record =
          typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
            ? (parsed as Record<string, unknown>)
            : { value: parsed };
        return { status: response.status, body: record, retried };
      }
      last = `${response.status} ${text.slice(0, 200)}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    retried += 1;
    if (Date.now() > deadline)
      throw new Error(`${method} ${path}: gave up after ${retried} attempts: ${last}`);
    await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** Math.min(attempt, 4))));
  }
}
