import type { KeyObject } from 'node:crypto';
import type { ServiceBusClient, ServiceBusSender } from '@azure/service-bus';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import type { Clock } from '../../ports/clock.js';
import type {
  OnPremCommand,
  OnPremCommandChannel,
  OnPremReply,
  SubmitOptions,
} from '../../ports/on-prem-directory.js';
import {
  commandQueueName,
  defaultCommandLifetimeInMs,
  directoryUserSchema,
  newEnvelope,
  publicKeyFromPem,
  sealSecret,
  signCommand,
  type Command,
  type Reply,
} from '../../relay-protocol/index.js';
import { traceContextProperties } from '../../telemetry.js';

/**
 * Fire-and-park sends for saga steps. Unlike `RelayHub.call` nothing waits here: the command is signed,
 * its password sealed to the site's X25519 key, and it is sent with this attempt's own message id (the
 * command id stays the agent's idempotency key) and a time to live that ends with the operation's
 * deadline, so an agent that comes back late never applies a command its saga gave up on.
 */
export function createCommandChannels(options: {
  client: ServiceBusClient;
  signer: { privateKey: KeyObject; kid: string };
  clock: Clock;
  /** Cap on a command's lifetime (default: the protocol's 6 h). */
  maxLifetimeInMs?: number;
}): {
  channelFor(site: { siteId: string; sitePublicKeyPem: string }): OnPremCommandChannel;
  close(): Promise<void>;
} {
  const senders = new Map<string, ServiceBusSender>();
  const sender = (siteId: string): ServiceBusSender => {
    let found = senders.get(siteId);
    if (found === undefined) {
      found = options.client.createSender(commandQueueName(siteId));
      senders.set(siteId, found);
    }
    return found;
  };

  return {
    channelFor(site) {
      const siteKey = publicKeyFromPem(site.sitePublicKeyPem, 'x25519');
      return {
        siteId: site.siteId,
        async submit(command: OnPremCommand, submit: SubmitOptions) {
          const now = options.clock.now();
          // Never longer than agents accept (24 h; 6 h default): the saga re-sends long before that.
          const lifetimeInMs = Math.min(
            submit.expiresAt.getTime() - now.getTime(),
            options.maxLifetimeInMs ?? defaultCommandLifetimeInMs,
          );
          if (lifetimeInMs <= 0)
            throw new AppError('Expired', `command ${submit.commandId} is past its operation's deadline`, {
              retryable: false,
            });
          const wire = toWire(command, (password) =>
            sealSecret(password, siteKey, { commandId: submit.commandId, siteId: site.siteId }),
          );
          const envelope = newEnvelope({
            commandId: submit.commandId,
            siteId: site.siteId,
            command: wire,
            now,
            lifetimeInMs,
          });
          try {
            await sender(site.siteId).sendMessages({
              body: signCommand(envelope, options.signer),
              messageId: submit.sendId,
              correlationId: submit.correlationId ?? submit.commandId,
              contentType: 'application/json',
              timeToLive: lifetimeInMs,
              applicationProperties: {
                ...traceContextProperties(),
                siteId: site.siteId,
                type: wire.type,
                commandId: submit.commandId,
              },
            });
          } catch (error) {
            throw new AppError(
              'Unavailable',
              `cannot send the command to site ${site.siteId}: ${(error as Error).message}`,
              { cause: error, retryable: true },
            );
          }
        },
      };
    },
    async close() {
      await Promise.all([...senders.values()].map((s) => s.close()));
      senders.clear();
    },
  };
}

function toWire(command: OnPremCommand, seal: (password: string) => ReturnType<typeof sealSecret>): Command {
  switch (command.type) {
    case 'createUser': {
      const { password, ...user } = command.user;
      return {
        type: 'createUser',
        ...user,
        ...(password === undefined ? {} : { password: seal(password) }),
      };
    }
    case 'resetPassword':
      return {
        type: 'resetPassword',
        target: command.target,
        password: seal(command.password),
        ...(command.mustChangeAtNextLogon === undefined
          ? {}
          : { mustChangeAtNextLogon: command.mustChangeAtNextLogon }),
      };
    default:
      return command;
  }
}

/** The facts of any write command's result (each command's full schema is in the relay protocol). */
const replyFactsSchema = z.object({
  user: directoryUserSchema.optional(),
  objectGuid: z.string().optional(),
  alreadyAbsent: z.boolean().optional(),
  replayed: z.boolean().optional(),
});

const clashAttribute = /\b(sAMAccountName|userPrincipalName|cn)\b/;

/** The relay protocol's reply (signature already checked by the hub) as flat facts for the saga step. */
export function toOnPremReply(reply: Reply): OnPremReply {
  if (!reply.ok) {
    const attribute =
      reply.error.code === 'AlreadyExists' ? clashAttribute.exec(reply.error.message)?.[1] : undefined;
    return {
      siteId: reply.siteId,
      commandId: reply.commandId,
      ok: false,
      error: {
        code: reply.error.code,
        message: `agent: ${reply.error.message}`,
        retryable: reply.error.retryable,
        ...(attribute === undefined ? {} : { attribute }),
      },
    };
  }
  const result: Record<string, string> = {};
  const facts = replyFactsSchema.safeParse(reply.result);
  if (facts.success) {
    const { user, objectGuid, alreadyAbsent, replayed } = facts.data;
    if (user !== undefined) {
      result.objectGuid = user.objectGuid;
      result.dn = user.dn;
      result.sAMAccountName = user.sAMAccountName;
      result.enabled = String(user.enabled);
    }
    if (objectGuid !== undefined) result.objectGuid = objectGuid;
    if (alreadyAbsent !== undefined) result.alreadyAbsent = String(alreadyAbsent);
    if (replayed !== undefined) result.replayed = String(replayed);
  }
  return { siteId: reply.siteId, commandId: reply.commandId, ok: true, result };
}
