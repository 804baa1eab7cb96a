import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Attribute, Change, Client } from 'ldapts';
import { resolveAgentConfig } from '../../agent/config.js';
import { startAgent } from '../../agent/runtime.js';
import { startSambaPeer } from '../../dev/peers/samba/index.js';
import { createLogger } from '../../shared/logging.js';
import { agentConfig, newHub, startRelayBus } from '../integration/ad/bus.js';
import { siteId, siteKeys, strongPassword } from '../integration/ad/support.js';

export interface AdBenchResult {
  /** Enabled users with password created per second through adapter → Service Bus → agent → DC. */
  viaAgentPerSecond: number;
  /** The same users with raw ldapts on the same DC: add (disabled), then one modify setting unicodePwd and enabling. */
  rawLdapPerSecond: number;
  /** viaAgent / raw: the cost of the relay (signing, bus round trips, idempotency checks, stamps). */
  ratio: number;
  users: number;
  concurrency: number;
}

async function inParallel<T>(
  items: T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        await work(item);
      }
    }),
  );
}

/** Users created per second through the relay vs raw LDAP, on one Samba DC in one run. */
export async function benchAd(
  options: { users?: number; concurrency?: number } = {},
): Promise<AdBenchResult> {
  const users = options.users ?? 100;
  const concurrency = options.concurrency ?? 4;
  const [dc, bus] = await Promise.all([startSambaPeer(), startRelayBus()]);
  const keys = siteKeys();
  const agent = await startAgent(
    resolveAgentConfig(agentConfig(bus, dc, keys, { maxConcurrentCommands: concurrency }), process.cwd()),
    { log: createLogger(() => undefined) },
  );
  const hub = newHub(bus, { defaultTimeoutInMs: 60_000 });
  const raw = new Client({ url: dc.url, tlsOptions: { ca: [readFileSync(dc.caFile)] } });
  try {
    await raw.bind(dc.bindDn, dc.password);
    const tag = Date.now().toString(36).slice(-4);
    const rawNames = Array.from({ length: users }, (_, i) => `r${tag}${i}`);
    const rawStart = performance.now();
    await inParallel(rawNames, concurrency, async (sam) => {
      const dn = `CN=${sam},${dc.usersOu}`;
      await raw.add(dn, [
        new Attribute({ type: 'objectClass', values: ['top', 'person', 'organizationalPerson', 'user'] }),
        new Attribute({ type: 'sAMAccountName', values: [sam] }),
        new Attribute({ type: 'userPrincipalName', values: [`${sam}@atria.test`] }),
        new Attribute({ type: 'displayName', values: [sam] }),
        new Attribute({ type: 'userAccountControl', values: ['514'] }),
      ]);
      // Password then enable in one ordered modify: the least raw LDAP can do under Windows AD's rules.
      await raw.modify(dn, [
        new Change({
          operation: 'replace',
          modification: new Attribute({
            type: 'unicodePwd',
            values: [Buffer.from(`"${strongPassword()}"`, 'utf16le')],
          }),
        }),
        new Change({
          operation: 'replace',
          modification: new Attribute({ type: 'userAccountControl', values: ['512'] }),
        }),
      ]);
    });
    const rawSeconds = (performance.now() - rawStart) / 1000;

    const directory = hub.directoryFor({
      siteId,
      sitePublicKeyPem: keys.publicKeyPem,
      agentPublicKeyPem: keys.agentPublicKeyPem,
    });
    const agentNames = Array.from({ length: users }, (_, i) => `a${tag}${i}`);
    const agentStart = performance.now();
    // The cloud side sends as fast as it likes; the agent's maxConcurrentCommands bounds the DC load.
    await Promise.all(
      agentNames.map((sam) =>
        directory.createUser(
          {
            ou: dc.usersOu,
            sAMAccountName: sam,
            userPrincipalName: `${sam}@atria.test`,
            displayName: sam,
            password: strongPassword(),
            enabled: true,
          },
          { commandId: `bench-${randomUUID()}` },
        ),
      ),
    );
    const agentSeconds = (performance.now() - agentStart) / 1000;
    const viaAgentPerSecond = Math.round((users / agentSeconds) * 10) / 10;
    const rawLdapPerSecond = Math.round((users / rawSeconds) * 10) / 10;
    return {
      viaAgentPerSecond,
      rawLdapPerSecond,
      ratio: Math.round((viaAgentPerSecond / rawLdapPerSecond) * 100) / 100,
      users,
      concurrency,
    };
  } finally {
    await raw.unbind().catch(() => undefined);
    await hub.close();
    await agent.stop();
    await bus.stop();
    await dc.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(JSON.stringify(await benchAd()));
}
