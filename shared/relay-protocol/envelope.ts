import { randomBytes } from 'node:crypto';
import { protocolVersion, type Command, type CommandEnvelope } from './schema.js';

/** Default lifetime of a command: long enough to survive an agent restart or a short site outage. */
export const defaultCommandLifetimeInMs = 6 * 60 * 60 * 1000;

export function newEnvelope(input: {
  commandId: string;
  siteId: string;
  command: Command;
  now: Date;
  lifetimeInMs?: number;
}): CommandEnvelope {
  return {
    v: protocolVersion,
    commandId: input.commandId,
    siteId: input.siteId,
    issuedAt: input.now.toISOString(),
    expiresAt: new Date(
      input.now.getTime() + (input.lifetimeInMs ?? defaultCommandLifetimeInMs),
    ).toISOString(),
    nonce: randomBytes(18).toString('base64url'),
    command: input.command,
  };
}
