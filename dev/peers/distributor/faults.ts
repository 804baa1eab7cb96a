import { randomUUID } from 'node:crypto';
import { z } from 'zod';

/**
 * On-demand failures, set through `POST /_admin/faults` (or the `faults` option) and used up by
 * matching `/v1` requests (the token endpoint included):
 * - `throttle`: 429 with `Retry-After` and Pax8's envelope, before the request runs;
 * - `error`: a 5xx before the request runs (nothing happened);
 * - `dropAfterCommit`: the request runs (a PUT is applied), then the connection is destroyed;
 * - `errorAfterCommit`: the request runs, then a 5xx is answered instead of its result.
 */
export const faultSchema = z
  .object({
    kind: z.enum(['throttle', 'error', 'dropAfterCommit', 'errorAfterCommit']),
    count: z.number().int().positive().default(1),
    retryAfterInSeconds: z.number().int().nonnegative().default(1),
    /** Leave out the Retry-After header (Pax8 does not document one). */
    omitRetryAfter: z.boolean().default(false),
    status: z.number().int().min(500).max(599).default(503),
    match: z
      .object({ method: z.string().optional(), pathIncludes: z.string().optional() })
      .strict()
      .default({}),
  })
  .strict();

export type FaultInput = z.input<typeof faultSchema>;
export type Fault = z.infer<typeof faultSchema> & { id: string; remaining: number };

export class FaultBook {
  private faults: Fault[] = [];

  add(input: unknown): Fault {
    const parsed = faultSchema.parse(input);
    const fault: Fault = { ...parsed, id: randomUUID(), remaining: parsed.count };
    this.faults.push(fault);
    return fault;
  }

  list(): Fault[] {
    return [...this.faults];
  }

  clear(): void {
    this.faults = [];
  }

  /** Takes one use of the first fault of these kinds that matches the request. */
  take(kinds: Fault['kind'][], method: string, path: string): Fault | undefined {
    const fault = this.faults.find(
      (candidate) =>
        kinds.includes(candidate.kind) &&
        candidate.remaining > 0 &&
        (candidate.match.method === undefined || candidate.match.method.toUpperCase() === method) &&
        (candidate.match.pathIncludes === undefined ||
          path.toLowerCase().includes(candidate.match.pathIncludes.toLowerCase())),
    );
    if (fault === undefined) return undefined;
    fault.remaining -= 1;
    if (fault.remaining === 0) this.faults = this.faults.filter((candidate) => candidate !== fault);
    return fault;
  }
}
