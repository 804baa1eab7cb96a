import type { CommandType } from './schema.js';

/**
 * Which agent version first understands each command type. The cloud sends a command only when every
 * available agent of the site runs at least this version (shared/usecases/sites.ts), so a site whose
 * agents are upgraded one by one never hands a new command to an old agent that would refuse it.
 *
 * Adding a command: one line here, with the version of the agent that ships it (bump `agentVersion`
 * in agent/runtime.ts to it). `satisfies Record<CommandType, …>` makes a missing line a compile error.
 */
export const minimumAgentVersion = {
  createUser: '0.1.0',
  updateAttributes: '0.1.0',
  enable: '0.1.0',
  disable: '0.1.0',
  resetPassword: '0.1.0',
  move: '0.1.0',
  delete: '0.1.0',
  groupAdd: '0.1.0',
  groupRemove: '0.1.0',
  findUser: '0.1.0',
  listChanges: '0.1.0',
  listGroupMembers: '0.2.0',
} as const satisfies Record<CommandType, `${number}.${number}.${number}`>;

/** Major.minor.patch as numbers; anything unparseable (or a pre-release tag) ranks below 0.0.0 parts. */
function parts(version: string): [number, number, number] | undefined {
  const match = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(version.trim());
  if (match === null) return undefined;
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

/** Negative when a < b, 0 when equal, positive when a > b; an unparseable version is the lowest. */
export function compareAgentVersions(a: string, b: string): number {
  const x = parts(a);
  const y = parts(b);
  if (x === undefined || y === undefined) return (x === undefined ? 0 : 1) - (y === undefined ? 0 : 1);
  for (let i = 0; i < 3; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Whether an agent reporting `agentVersion` understands `type` (unknown types: never). */
export function agentUnderstands(agentVersion: string, type: string): boolean {
  const minimum = (minimumAgentVersion as Record<string, string | undefined>)[type];
  return minimum !== undefined && compareAgentVersions(agentVersion, minimum) >= 0;
}
