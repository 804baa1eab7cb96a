import type { KeyObject } from 'node:crypto';
import { AppError } from '../shared/errors.js';
import type { Clock } from '../shared/ports/clock.js';
import { verifySignedCommand, type CommandEnvelope } from '../shared/relay-protocol/index.js';
import type { NonceStore } from './nonce-store.js';

export interface VerifierOptions {
  siteId: string;
  /** kid → Ed25519 public key of the cloud (two during a key rotation). */
  trustedKeys: ReadonlyMap<string, KeyObject>;
  clock: Clock;
  nonces: NonceStore;
  /** Longest lifetime a command may claim (expiresAt − issuedAt); default 24 h. */
  maxLifetimeInMs?: number;
  /** Tolerated clock difference between cloud and site; default 2 min. */
  clockSkewInMs?: number;
}

/**
 * The agent's gate: only a command signed by a trusted cloud key, for this site, inside its lifetime and
 * not seen before is executed. Scope (OUs, attributes) is checked by the executor on parsed DNs.
 *
 * Replay vs redelivery: a nonce is recorded when its command has been answered (`markDone`), not when it
 * arrives, so a Service Bus redelivery after a crash or an abandoned attempt runs again (every command is
 * idempotent), while a copy sent after the answer is refused.
 */
export class CommandVerifier {
  constructor(private readonly options: VerifierOptions) {}

  verify(body: unknown): CommandEnvelope {
    const envelope = verifySignedCommand(body, this.options.trustedKeys);
    if (envelope.siteId !== this.options.siteId) {
      throw new AppError(
        'OutOfScope',
        `command is for site ${envelope.siteId}, this agent serves ${this.options.siteId}`,
        {
          retryable: false,
        },
      );
    }
    const now = this.options.clock.now().getTime();
    const skew = this.options.clockSkewInMs ?? 120_000;
    const issued = Date.parse(envelope.issuedAt);
    const expires = Date.parse(envelope.expiresAt);
    if (expires <= issued || expires - issued > (this.options.maxLifetimeInMs ?? 86_400_000)) {
      throw new AppError('Validation', 'command lifetime is invalid', { retryable: false });
    }
    if (issued > now + skew)
      throw new AppError('Expired', 'command is issued in the future', { retryable: false });
    if (expires + skew <= now)
      throw new AppError('Expired', `command expired at ${envelope.expiresAt}`, { retryable: false });
    if (this.options.nonces.has(envelope.nonce)) {
      throw new AppError('Replayed', `command ${envelope.commandId} was already answered (nonce seen)`, {
        retryable: false,
      });
    }
    return envelope;
  }

  markDone(envelope: CommandEnvelope): void {
    // Keep the nonce until the command could no longer pass the expiry check anyway.
    this.options.nonces.add(
      envelope.nonce,
      Date.parse(envelope.expiresAt) + (this.options.clockSkewInMs ?? 120_000),
    );
  }
}
