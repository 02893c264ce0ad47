/** What `InboxStore.run` returns when the message's key has a row already: ack without running. */
export const INBOX_DUPLICATE = Symbol('inbox-duplicate');
