import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * The entity config of Microsoft's Service Bus emulator (`config.json`, schema in
 * Azure/azure-service-bus-emulator-installer ServiceBus-Emulator/Schema/Config-schema.json), accepted as
 * is, plus one extension of ours: `Properties.AuthorizationRules` on a queue or topic (SAS policies
 * scoped to that entity, as Azure allows and the emulator does not).
 */
const isoDuration = z
  .string()
  .regex(
    /^P(?!$)(?:\d+Y)?(?:\d+M)?(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?$/,
    'must be an ISO 8601 duration such as PT1M or PT2S',
  );
const entityName = z
  .string()
  .regex(/^[A-Za-z0-9]$|^[A-Za-z0-9][\w\-./]*[A-Za-z0-9]$/, 'is not a valid entity name');
const forwardName = z.union([z.literal(''), entityName]);

export const accessRights = ['Listen', 'Send', 'Manage'] as const;
export type AccessRight = (typeof accessRights)[number];

const authorizationRule = z.strictObject({
  KeyName: z.string().min(1),
  Key: z.string().min(1),
  Rights: z.array(z.enum(accessRights)).min(1),
});

const queueProperties = z.strictObject({
  DeadLetteringOnMessageExpiration: z.boolean().optional(),
  DefaultMessageTimeToLive: isoDuration.optional(),
  DuplicateDetectionHistoryTimeWindow: isoDuration.optional(),
  ForwardDeadLetteredMessagesTo: forwardName.optional(),
  ForwardTo: forwardName.optional(),
  LockDuration: isoDuration.optional(),
  MaxDeliveryCount: z.number().int().min(1).optional(),
  RequiresDuplicateDetection: z.boolean().optional(),
  RequiresSession: z.boolean().optional(),
  AuthorizationRules: z.array(authorizationRule).optional(),
});

const topicProperties = z.strictObject({
  DefaultMessageTimeToLive: isoDuration.optional(),
  DuplicateDetectionHistoryTimeWindow: isoDuration.optional(),
  RequiresDuplicateDetection: z.boolean().optional(),
  AuthorizationRules: z.array(authorizationRule).optional(),
});

const subscriptionProperties = z.strictObject({
  DeadLetteringOnMessageExpiration: z.boolean().optional(),
  DefaultMessageTimeToLive: isoDuration.optional(),
  LockDuration: isoDuration.optional(),
  MaxDeliveryCount: z.number().int().min(1).optional(),
  ForwardDeadLetteredMessagesTo: forwardName.optional(),
  ForwardTo: forwardName.optional(),
  RequiresSession: z.boolean().optional(),
});

const correlationFilter = z
  .strictObject({
    ContentType: z.string().optional(),
    CorrelationId: z.string().optional(),
    Label: z.string().optional(),
    MessageId: z.string().optional(),
    ReplyTo: z.string().optional(),
    ReplyToSessionId: z.string().optional(),
    SessionId: z.string().optional(),
    To: z.string().optional(),
    Properties: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  })
  .refine((filter) => Object.keys(filter).length > 0, 'a CorrelationFilter needs at least one property');

const rule = z.strictObject({
  Name: entityName,
  Properties: z.discriminatedUnion('FilterType', [
    z.strictObject({
      FilterType: z.literal('Correlation'),
      CorrelationFilter: correlationFilter,
      Action: z.strictObject({ SqlExpression: z.string() }).optional(),
    }),
    z.strictObject({
      FilterType: z.literal('Sql'),
      SqlFilter: z.strictObject({ SqlExpression: z.string() }),
      Action: z.strictObject({ SqlExpression: z.string() }).optional(),
    }),
  ]),
});

export const emulatorConfigSchema = z.strictObject({
  UserConfig: z.strictObject({
    Namespaces: z
      .array(
        z.strictObject({
          Name: z.string().min(1),
          Queues: z.array(z.strictObject({ Name: entityName, Properties: queueProperties.optional() })),
          Topics: z.array(
            z.strictObject({
              Name: entityName,
              Properties: topicProperties.optional(),
              Subscriptions: z.array(
                z.strictObject({
                  Name: entityName,
                  Properties: subscriptionProperties.optional(),
                  Rules: z.array(rule).optional(),
                }),
              ),
            }),
          ),
        }),
      )
      .min(1)
      .max(1),
    Logging: z.strictObject({ Type: z.enum(['File', 'Console', 'File,Console', 'Console,File']) }),
  }),
});

export type EmulatorConfig = z.input<typeof emulatorConfigSchema>;

export interface SasRule {
  keyName: string;
  key: string;
  rights: readonly AccessRight[];
  /** Queue or topic name the rule is scoped to; undefined = namespace-wide. */
  entity?: string;
}

export type CorrelationFilter = z.output<typeof correlationFilter>;

export interface MessageEntitySettings {
  lockDurationInMs: number;
  maxDeliveryCount: number;
  defaultMessageTimeToLiveInMs: number;
  deadLetteringOnMessageExpiration: boolean;
  requiresSession: boolean;
  forwardTo: string | undefined;
  forwardDeadLetteredMessagesTo: string | undefined;
}

export interface DuplicateDetectionSettings {
  requiresDuplicateDetection: boolean;
  duplicateDetectionHistoryTimeWindowInMs: number;
}

export interface QueueDefinition {
  name: string;
  settings: MessageEntitySettings & DuplicateDetectionSettings;
}

/** A subscription rule reduced to what the peer evaluates: a correlation filter, or a constant. */
export type SubscriptionFilter =
  { kind: 'correlation'; filter: CorrelationFilter } | { kind: 'constant'; matches: boolean };

export interface SubscriptionDefinition {
  name: string;
  settings: MessageEntitySettings;
  /** A message is copied to the subscription when any filter matches (no rules = the $Default TrueFilter). */
  filters: SubscriptionFilter[];
}

export interface TopicDefinition {
  name: string;
  settings: DuplicateDetectionSettings & { defaultMessageTimeToLiveInMs: number };
  subscriptions: SubscriptionDefinition[];
}

export interface NamespaceDefinition {
  name: string;
  queues: QueueDefinition[];
  topics: TopicDefinition[];
  rules: SasRule[];
}

/** ISO 8601 duration → milliseconds (years and months as 365 and 30 days: the emulator caps TTLs anyway). */
export function durationInMs(duration: string): number {
  const match = /^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(
    duration,
  );
  if (match === null) throw new Error(`not an ISO 8601 duration: ${duration}`);
  const [, years, months, days, hours, minutes, seconds] = match;
  const n = (value: string | undefined): number => (value === undefined ? 0 : Number(value));
  const totalDays = n(years) * 365 + n(months) * 30 + n(days);
  return Math.round((((totalDays * 24 + n(hours)) * 60 + n(minutes)) * 60 + n(seconds)) * 1000);
}

// Azure's defaults where the emulator schema is silent or differs: MaxDeliveryCount 10 (the emulator
// says 3), TTL and duplicate window as in the emulator schema.
const defaults = {
  lockDuration: 'PT1M',
  maxDeliveryCount: 10,
  defaultMessageTimeToLive: 'PT1H',
  duplicateDetectionHistoryTimeWindow: 'PT20S',
};

function messageEntitySettings(
  properties: z.output<typeof subscriptionProperties> | undefined,
): MessageEntitySettings {
  return {
    lockDurationInMs: durationInMs(properties?.LockDuration ?? defaults.lockDuration),
    maxDeliveryCount: properties?.MaxDeliveryCount ?? defaults.maxDeliveryCount,
    defaultMessageTimeToLiveInMs: durationInMs(
      properties?.DefaultMessageTimeToLive ?? defaults.defaultMessageTimeToLive,
    ),
    deadLetteringOnMessageExpiration: properties?.DeadLetteringOnMessageExpiration ?? false,
    requiresSession: properties?.RequiresSession ?? false,
    forwardTo: properties?.ForwardTo === '' ? undefined : properties?.ForwardTo,
    forwardDeadLetteredMessagesTo:
      properties?.ForwardDeadLetteredMessagesTo === ''
        ? undefined
        : properties?.ForwardDeadLetteredMessagesTo,
  };
}

function duplicateDetection(
  properties:
    | {
        RequiresDuplicateDetection?: boolean | undefined;
        DuplicateDetectionHistoryTimeWindow?: string | undefined;
      }
    | undefined,
): DuplicateDetectionSettings {
  return {
    requiresDuplicateDetection: properties?.RequiresDuplicateDetection ?? false,
    duplicateDetectionHistoryTimeWindowInMs: durationInMs(
      properties?.DuplicateDetectionHistoryTimeWindow ?? defaults.duplicateDetectionHistoryTimeWindow,
    ),
  };
}

/** Only the constant SQL filters are understood; anything else fails at load rather than matching wrongly. */
function sqlFilter(expression: string, where: string): SubscriptionFilter {
  const normalized = expression.replace(/\s+/g, '').toLowerCase();
  if (normalized === '1=1' || normalized === 'true') return { kind: 'constant', matches: true };
  if (normalized === '1=0' || normalized === 'false') return { kind: 'constant', matches: false };
  throw new Error(
    `${where}: SqlFilter "${expression}" is not supported by the local peer (only 1=1 and 1=0); use a CorrelationFilter`,
  );
}

function formatIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `  - ${issue.path.join('.') || '(root)'}: ${issue.message}`).join('\n');
}

/** Validates an emulator config (object or JSON text) and reduces it to the peer's model. */
export function parseEmulatorConfig(input: unknown, source = 'config'): NamespaceDefinition {
  let raw = input;
  if (typeof input === 'string') {
    try {
      raw = JSON.parse(input) as unknown;
    } catch (error) {
      throw new Error(
        `${source} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
  }
  const parsed = emulatorConfigSchema.safeParse(raw);
  if (!parsed.success)
    throw new Error(`${source} is not a valid Service Bus emulator config:\n${formatIssues(parsed.error)}`);
  const namespace = parsed.data.UserConfig.Namespaces[0];
  if (namespace === undefined) throw new Error(`${source}: no namespace`);
  const rules: SasRule[] = [];
  const seen = new Set<string>();
  const claim = (name: string): void => {
    const key = name.toLowerCase();
    if (seen.has(key)) throw new Error(`${source}: entity "${name}" is declared twice`);
    seen.add(key);
  };
  const queues = namespace.Queues.map((queue): QueueDefinition => {
    claim(queue.Name);
    for (const rule of queue.Properties?.AuthorizationRules ?? []) {
      rules.push({ keyName: rule.KeyName, key: rule.Key, rights: rule.Rights, entity: queue.Name });
    }
    return {
      name: queue.Name,
      settings: { ...messageEntitySettings(queue.Properties), ...duplicateDetection(queue.Properties) },
    };
  });
  const topics = namespace.Topics.map((topic): TopicDefinition => {
    claim(topic.Name);
    for (const rule of topic.Properties?.AuthorizationRules ?? []) {
      rules.push({ keyName: rule.KeyName, key: rule.Key, rights: rule.Rights, entity: topic.Name });
    }
    return {
      name: topic.Name,
      settings: {
        ...duplicateDetection(topic.Properties),
        defaultMessageTimeToLiveInMs: durationInMs(
          topic.Properties?.DefaultMessageTimeToLive ?? defaults.defaultMessageTimeToLive,
        ),
      },
      subscriptions: topic.Subscriptions.map((subscription): SubscriptionDefinition => {
        const where = `${source}: ${topic.Name}/Subscriptions/${subscription.Name}`;
        const filters = (subscription.Rules ?? []).map((rule): SubscriptionFilter => {
          if (rule.Properties.Action !== undefined) {
            throw new Error(
              `${where}: rule "${rule.Name}" has an Action, which the local peer does not apply`,
            );
          }
          return rule.Properties.FilterType === 'Correlation'
            ? { kind: 'correlation', filter: rule.Properties.CorrelationFilter }
            : sqlFilter(rule.Properties.SqlFilter.SqlExpression, where);
        });
        return {
          name: subscription.Name,
          settings: messageEntitySettings(subscription.Properties),
          filters: filters.length === 0 ? [{ kind: 'constant', matches: true }] : filters,
        };
      }),
    };
  });
  const forwards: [string, string | undefined][] = [
    ...queues.flatMap((queue): [string, string | undefined][] => [
      [queue.name, queue.settings.forwardTo],
      [queue.name, queue.settings.forwardDeadLetteredMessagesTo],
    ]),
    ...topics.flatMap((topic) =>
      topic.subscriptions.flatMap((subscription): [string, string | undefined][] => [
        [`${topic.name}/Subscriptions/${subscription.name}`, subscription.settings.forwardTo],
        [
          `${topic.name}/Subscriptions/${subscription.name}`,
          subscription.settings.forwardDeadLetteredMessagesTo,
        ],
      ]),
    ),
  ];
  for (const [from, to] of forwards) {
    if (to !== undefined && !seen.has(to.toLowerCase())) {
      throw new Error(
        `${source}: ${from} forwards to "${to}", which is not a queue or topic of the namespace`,
      );
    }
  }
  return { name: namespace.Name, queues, topics, rules };
}

export function loadEmulatorConfig(config: EmulatorConfig | string): NamespaceDefinition {
  if (typeof config !== 'string') return parseEmulatorConfig(config);
  let text: string;
  try {
    text = readFileSync(config, 'utf8');
  } catch (error) {
    throw new Error(
      `cannot read Service Bus config ${config}: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
  return parseEmulatorConfig(text, config);
}
