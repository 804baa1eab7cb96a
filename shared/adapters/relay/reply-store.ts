import { z } from 'zod';
import type { Clock } from '../../ports/clock.js';
import type { Store } from '../../ports/store.js';
import { replySchema } from '../../relay-protocol/index.js';
import type { ReplyStore } from './relay-hub.js';

const storedReplySchema = z.object({ savedAt: z.string(), reply: replySchema });

/**
 * Agent replies shared by every instance through the app's Store (PK site, RK command id). A reply
 * only matters while its step can still be retried, so `prune` drops those older than a day.
 */
export function storeBackedReplyStore(
  store: Store,
  clock: Clock,
): ReplyStore & { prune(siteId: string, olderThanInMs?: number): Promise<number> } {
  const replies = store.collection('relayreplies', storedReplySchema);
  return {
    async save(reply) {
      await replies.upsert(reply.siteId, reply.commandId, { savedAt: clock.now().toISOString(), reply });
    },
    async find(siteId, commandId) {
      return (await replies.get(siteId, commandId))?.value.reply;
    },
    async prune(siteId, olderThanInMs = 24 * 3600_000) {
      const cutoff = new Date(clock.now().getTime() - olderThanInMs).toISOString();
      let removed = 0;
      for await (const entry of replies.list(siteId)) {
        if (entry.value.savedAt >= cutoff) continue;
        await replies.delete(siteId, entry.rowKey, entry.etag);
        removed++;
      }
      return removed;
    },
  };
}
