import { z } from 'zod';
import type { Clock } from '../ports/clock.js';
import type { CloudDirectory } from '../ports/cloud-directory.js';
import type { Store } from '../ports/store.js';
import { customersCollection } from './customers.js';

/**
 * Entra group-based licensing as seat demand (issue 17). A group with assignedLicenses gives every
 * direct user member those SKUs (group-assignlicense.md); when no seat is free Entra keeps the intent
 * on the user as `state: Error, error: CountViolation` (licenseassignmentstate.md) and does not retry
 * by itself once seats are bought — a reprocess does (licensing-groups-resolve-problems.md, "Force
 * group license processing"; user-reprocesslicenseassignment.md).
 *
 * So the demand a licensed group adds for a SKU is its members who hold no seat of it yet (no Active or
 * ActiveWithError state from any source): members who hold one, directly or through a group, are in
 * subscribedSkus' consumedUnits already. A user in several licensed groups counts once per SKU.
 */
export interface GroupLicensingDeps {
  store: Store;
  clock: Clock;
  cloudDirectory: (tenantId: string) => CloudDirectory;
}

const waitingSchema = z.object({
  providerId: z.string(),
  customerId: z.string(),
  tenantId: z.string(),
  /** Users waiting for an inherited seat when demand was last read. */
  userIds: z.array(z.string()),
  at: z.string(),
});
const WAITING = 'waiting';

const holdsSeat = (state: string): boolean => state === 'Active' || state === 'ActiveWithError';

export function createGroupLicensing(deps: GroupLicensingDeps) {
  const waiting = deps.store.collection('grouplicensingwaiting', waitingSchema);

  /** Per SKU (lower-case): the users of licensed groups still waiting for a seat of it. */
  async function waitingBySku(cloud: CloudDirectory): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    for (const group of await cloud.listLicensedGroups()) {
      const members = await cloud.listGroupMemberLicences(group.id);
      for (const skuId of group.skuIds)
        for (const member of members) {
          if (member.states.some((s) => s.skuId === skuId && holdsSeat(s.state))) continue;
          let users = out.get(skuId);
          if (users === undefined) out.set(skuId, (users = new Set()));
          users.add(member.id);
        }
    }
    return out;
  }

  /**
   * Seats already free serve waiting members at once: Entra leaves them in error until a reprocess, so
   * without this a freed seat would sit unused while its group's members stay unlicensed.
   */
  async function reprocessWhereSeatsAreFree(
    cloud: CloudDirectory,
    bySku: Map<string, Set<string>>,
  ): Promise<void> {
    if (bySku.size === 0) return;
    const done = new Set<string>();
    for (const sku of await cloud.listSubscribedSkus()) {
      let free = sku.enabledUnits - sku.consumedUnits;
      for (const userId of [...(bySku.get(sku.skuId.toLowerCase()) ?? [])].sort()) {
        if (free <= 0) break;
        if (!done.has(userId)) await cloud.reprocessLicenceAssignment(userId);
        done.add(userId);
        free--;
      }
    }
  }

  /**
   * The autoscaler's demand input: per SKU, how many seats licensed groups wait for at this customer
   * (none without an Entra tenant). Members a free seat can serve are reprocessed now, and still counted
   * here: the autoscaler's `assigned` was read before, so counting them as waiting keeps the total right
   * (never a reduction for seats they just took). Who waits is remembered, so `reprocessWaiting` can
   * finish the job once seats were bought.
   */
  async function demand(providerId: string, customerId: string): Promise<Map<string, number>> {
    const tenantId = (await customersCollection(deps.store).get(providerId, customerId))?.value.entra
      ?.tenantId;
    if (tenantId === undefined) return new Map();
    const cloud = deps.cloudDirectory(tenantId);
    const bySku = await waitingBySku(cloud);
    await reprocessWhereSeatsAreFree(cloud, bySku);
    const userIds = [...new Set([...bySku.values()].flatMap((users) => [...users]))].sort();
    const rowKey = `${providerId}/${customerId}`;
    if (userIds.length === 0) await waiting.delete(WAITING, rowKey);
    else
      await waiting.upsert(WAITING, rowKey, {
        providerId,
        customerId,
        tenantId,
        userIds,
        at: deps.clock.now().toISOString(),
      });
    return new Map([...bySku].map(([skuId, users]) => [skuId, users.size]));
  }

  /**
   * After seats were bought: asks Entra to reprocess every user that was waiting for an inherited seat
   * (idempotent: a user already licensed stays so; one still short of a seat stays in error and waits
   * for the next purchase). Each customer's list is dropped once nobody waits there any more.
   */
  async function reprocessWaiting(): Promise<{ users: number; failed: string[] }> {
    let users = 0;
    const failed: string[] = [];
    for await (const row of waiting.list(WAITING)) {
      const { tenantId, userIds } = row.value;
      try {
        const cloud = deps.cloudDirectory(tenantId);
        for (const userId of userIds) {
          await cloud.reprocessLicenceAssignment(userId);
          users++;
        }
        const still = new Set([...(await waitingBySku(cloud)).values()].flatMap((u) => [...u]));
        if (still.size === 0) await waiting.delete(WAITING, row.rowKey, row.etag);
        else
          await waiting.replace(WAITING, row.rowKey, { ...row.value, userIds: [...still].sort() }, row.etag);
      } catch {
        // One tenant that does not answer must not stop the others; its list stays for the next run.
        failed.push(row.rowKey);
      }
    }
    return { users, failed };
  }

  return { demand, reprocessWaiting };
}

export type GroupLicensing = ReturnType<typeof createGroupLicensing>;
