export { RelayHub, type RelayHubOptions, type ReplyStore } from './relay-hub.js';
export { storeBackedReplyStore } from './reply-store.js';
export { createCommandChannels, toOnPremReply } from './command-channel.js';
