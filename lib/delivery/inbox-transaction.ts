import type { EventContext } from '../context/event-context.js';

// Kept beside the context rather than on it: only inbox handlers have a transaction, and the
// context (a folder below) stays free of the database.
const transactions = new WeakMap<EventContext, unknown>();

/** The dispatcher hands the attempt's open transaction to the handler call through its context. */
export function bindInboxTransaction(ctx: EventContext, tx: unknown): void {
  transactions.set(ctx, tx);
}

export function unbindInboxTransaction(ctx: EventContext): void {
  transactions.delete(ctx);
}

/** The open transaction of the handler call of `ctx`; throws outside an inbox handler's call. */
export function inboxTransactionOf(ctx: EventContext): unknown {
  const tx = transactions.get(ctx);
  if (tx === undefined) throw new Error(`${ctx.handler}: no inbox transaction is open for this call (a bug in nestjs-jetstream, or the transaction was used after the handler returned)`);
  return tx;
}
