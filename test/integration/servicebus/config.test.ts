import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  durationInMs,
  loadEmulatorConfig,
  parseEmulatorConfig,
} from '../../../dev/peers/servicebus/config.js';
import { startServiceBusPeer } from '../../../dev/peers/servicebus/index.js';
import { emulatorConfig } from './support.js';

// The emulator's config.json format, accepted as is and validated with clear messages.
const shipped = fileURLToPath(new URL('../../../dev/peers/servicebus/config.json', import.meta.url));

describe('Service Bus peer config', () => {
  it('loads the shipped config.json with the app queues', () => {
    const namespace = loadEmulatorConfig(shipped);
    expect(namespace.name).toBe('sbemulatorns');
    expect(namespace.queues.map((queue) => queue.name)).toEqual([
      'directory-work',
      'licence-work',
      'onboarding-work',
      'agent-replies',
      'agent-site-demo',
      // The tenancy e2e's own site (sites are global names; each file that runs an agent has its own).
      'agent-site-tenancy',
      // The onboarding e2e's site (AD read through its agent).
      'agent-site-onboarding',
    ]);
    for (const queue of namespace.queues) {
      expect(queue.settings).toMatchObject({
        lockDurationInMs: 60_000,
        maxDeliveryCount: 10,
        requiresDuplicateDetection: true,
        duplicateDetectionHistoryTimeWindowInMs: 600_000,
        defaultMessageTimeToLiveInMs: 3_600_000,
      });
    }
  });

  it('accepts the emulator sample shape, Rules and Logging included', () => {
    const namespace = parseEmulatorConfig({
      UserConfig: {
        Namespaces: [
          {
            Name: 'sbemulatorns',
            Queues: [
              {
                Name: 'queue.1',
                Properties: {
                  DeadLetteringOnMessageExpiration: false,
                  DefaultMessageTimeToLive: 'PT1H',
                  DuplicateDetectionHistoryTimeWindow: 'PT20S',
                  ForwardDeadLetteredMessagesTo: '',
                  ForwardTo: '',
                  LockDuration: 'PT1M',
                  MaxDeliveryCount: 3,
                  RequiresDuplicateDetection: false,
                  RequiresSession: false,
                },
              },
            ],
            Topics: [
              {
                Name: 'topic.1',
                Properties: {
                  DefaultMessageTimeToLive: 'PT1H',
                  DuplicateDetectionHistoryTimeWindow: 'PT20S',
                  RequiresDuplicateDetection: false,
                },
                Subscriptions: [
                  {
                    Name: 'subscription.1',
                    Properties: {
                      DeadLetteringOnMessageExpiration: false,
                      DefaultMessageTimeToLive: 'PT1H',
                      LockDuration: 'PT1M',
                      MaxDeliveryCount: 3,
                      ForwardDeadLetteredMessagesTo: '',
                      ForwardTo: '',
                      RequiresSession: false,
                    },
                    Rules: [
                      {
                        Name: 'app-prop-filter-1',
                        Properties: {
                          FilterType: 'Correlation',
                          CorrelationFilter: {
                            ContentType: 'application/text',
                            CorrelationId: 'id1',
                            Label: 'subject1',
                            MessageId: 'msgid1',
                            ReplyTo: 'someQueue',
                            ReplyToSessionId: 'sessionId',
                            SessionId: 'session1',
                            To: 'xyz',
                          },
                        },
                      },
                    ],
                  },
                ],
              },
            ],
          },
        ],
        Logging: { Type: 'File' },
      },
    });
    expect(namespace.queues[0]?.settings.maxDeliveryCount).toBe(3);
    expect(namespace.topics[0]?.subscriptions[0]?.filters[0]).toMatchObject({
      kind: 'correlation',
      filter: { Label: 'subject1' },
    });
  });

  it('parses ISO 8601 durations, fractional seconds included', () => {
    expect(durationInMs('PT1M')).toBe(60_000);
    expect(durationInMs('PT2S')).toBe(2000);
    expect(durationInMs('PT0.5S')).toBe(500);
    expect(durationInMs('P1DT1H')).toBe(90_000_000);
  });

  it('fails with messages that name the offending fields', () => {
    expect(() =>
      parseEmulatorConfig(emulatorConfig([{ Name: 'q', Properties: { LockDuration: '60s' } }])),
    ).toThrow(/UserConfig\.Namespaces\.0\.Queues\.0\.Properties\.LockDuration: must be an ISO 8601 duration/);
    expect(() =>
      parseEmulatorConfig(emulatorConfig([{ Name: 'q', Properties: { LockDurration: 'PT1M' } as never }])),
    ).toThrow(/LockDurration/);
    expect(() => parseEmulatorConfig('{ not json')).toThrow(/not valid JSON/);
    expect(() => parseEmulatorConfig(emulatorConfig([{ Name: 'q' }, { Name: 'Q' }]))).toThrow(
      /declared twice/,
    );
    expect(() =>
      parseEmulatorConfig(
        emulatorConfig(
          [],
          [
            {
              Name: 't',
              Subscriptions: [
                {
                  Name: 's',
                  Rules: [
                    {
                      Name: 'r',
                      Properties: { FilterType: 'Sql', SqlFilter: { SqlExpression: "sys.Label = 'x'" } },
                    },
                  ],
                },
              ],
            },
          ],
        ),
      ),
    ).toThrow(/SqlFilter .* not supported/);
  });

  it('refuses to start on an invalid config file path', async () => {
    await expect(startServiceBusPeer({ config: '/nonexistent/config.json' })).rejects.toThrow(
      /cannot read Service Bus config/,
    );
  });
});
