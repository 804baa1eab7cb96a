import type { Store } from '../../ports/store.js';
import { replySchema } from '../../relay-protocol/index.js';
import type { ReplyStore } from './relay-hub.js';

/** Agent replies shared by every instance through the app's Store (PK site, RK command id). */
export function storeBackedReplyStore(store: Store): ReplyStore {
  const replies = store.collection('relayreplies', replySchema);
  return {
    async save(reply) {
      await replies.upsert(reply.siteId, reply.commandId, reply);
    },
    async find(siteId, commandId) {
      return (await replies.get(siteId, commandId))?.value;
    },
  };
}
