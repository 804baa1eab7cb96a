import type { ServiceBusClient } from '@azure/service-bus';

/**
 * rhea (under @azure/service-bus 7.9) writes the dispositions issued in one tick as ranges and merges
 * two adjacent deliveries into one frame carrying the first one's outcome (write_dispositions checks
 * outcomes only from the third delivery on). An abandon next to a complete would then complete the
 * failed message, or redeliver the completed one. Settlements on one client are therefore issued one
 * per event-loop turn, so each gets its own frame.
 */
export type Gate = <T>(settle: () => Promise<T>) => Promise<T>;
const gates = new WeakMap<ServiceBusClient, Gate>();

export function settlementGate(client: ServiceBusClient): Gate {
  let gate = gates.get(client);
  if (gate === undefined) {
    let tail: Promise<void> = Promise.resolve();
    gate = <T>(settle: () => Promise<T>): Promise<T> => {
      const issued = tail.then(() => ({ result: settle() }));
      tail = issued.then(
        () => new Promise<void>((resolve) => setImmediate(resolve)),
        () => undefined,
      );
      return issued.then(({ result }) => result);
    };
    gates.set(client, gate);
  }
  return gate;
}
