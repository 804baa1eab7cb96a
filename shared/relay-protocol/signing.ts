import { sign, verify, type KeyObject } from 'node:crypto';
import { AppError } from '../errors.js';
import { canonicalJson } from './canonical.js';
import {
  commandEnvelopeSchema,
  protocolVersion,
  signedCommandSchema,
  type AgentMessage,
  type CommandEnvelope,
  type SignedCommand,
} from './schema.js';

/**
 * Detached Ed25519 signature over canonicalJson(envelope). The signature covers every field of the
 * envelope (ids, site, times, nonce, command incl. sealed password), so nothing can be swapped in transit.
 * Verification runs on the envelope exactly as received, before the schema parse.
 */
export function signCommand(
  envelope: CommandEnvelope,
  key: { privateKey: KeyObject; kid: string },
): SignedCommand {
  const value = sign(null, Buffer.from(canonicalJson(envelope), 'utf8'), key.privateKey).toString(
    'base64url',
  );
  return { v: protocolVersion, envelope, signature: { alg: 'Ed25519', kid: key.kid, value } };
}

/** Returns the parsed envelope of a correctly signed command or throws BadSignature / Validation. */
export function verifySignedCommand(
  body: unknown,
  trustedKeys: ReadonlyMap<string, KeyObject>,
): CommandEnvelope {
  const signed = signedCommandSchema.safeParse(body);
  if (!signed.success)
    throw new AppError('BadSignature', 'command is not a signed relay command', { retryable: false });
  const key = trustedKeys.get(signed.data.signature.kid);
  if (key === undefined) {
    throw new AppError('BadSignature', `unknown signing key ${signed.data.signature.kid}`, {
      retryable: false,
    });
  }
  let valid: boolean;
  try {
    valid = verify(
      null,
      Buffer.from(canonicalJson(signed.data.envelope), 'utf8'),
      key,
      Buffer.from(signed.data.signature.value, 'base64url'),
    );
  } catch {
    valid = false;
  }
  if (!valid) throw new AppError('BadSignature', 'command signature does not verify', { retryable: false });
  const envelope = commandEnvelopeSchema.safeParse(signed.data.envelope);
  if (!envelope.success) {
    throw new AppError(
      'Validation',
      `signed command fails the schema: ${envelope.error.issues[0]?.message ?? ''}`,
      {
        retryable: false,
        details: {
          issues: envelope.error.issues.map((issue) => ({
            path: issue.path.join('.'),
            message: issue.message,
          })),
        },
      },
    );
  }
  return envelope.data;
}

/**
 * Signs a reply or heartbeat with the site's agent key (Ed25519 over the message without its
 * signatures); during a key rotation also with the next key (`nextSignature`, same bytes).
 */
export function signAgentMessage<T extends AgentMessage>(
  message: T,
  privateKey: KeyObject,
  nextPrivateKey?: KeyObject,
): T {
  const bytes = Buffer.from(canonicalJson(unsignedOf(message)), 'utf8');
  const signature = { alg: 'Ed25519' as const, value: sign(null, bytes, privateKey).toString('base64url') };
  if (nextPrivateKey === undefined) {
    const { nextSignature: _dropped, ...rest } = message;
    return { ...rest, signature } as T;
  }
  const nextSignature = {
    alg: 'Ed25519' as const,
    value: sign(null, bytes, nextPrivateKey).toString('base64url'),
  };
  return { ...message, signature, nextSignature };
}

function unsignedOf(message: AgentMessage): Omit<AgentMessage, 'signature' | 'nextSignature'> {
  const { signature: _s, nextSignature: _n, ...unsigned } = message;
  return unsigned;
}

/** Whether the message carries a signature (either slot) that verifies with this public key. */
export function verifyAgentMessage(message: AgentMessage, publicKey: KeyObject): boolean {
  const bytes = Buffer.from(canonicalJson(unsignedOf(message)), 'utf8');
  return [message.signature, message.nextSignature].some((signature) => {
    if (signature === undefined) return false;
    try {
      return verify(null, bytes, publicKey, Buffer.from(signature.value, 'base64url'));
    } catch {
      return false;
    }
  });
}
