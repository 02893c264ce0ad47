import type { BatchContext } from '../context/batch-context.js';
import type { EventContext } from '../context/event-context.js';

/** A message's context, or a batch handler's: the second argument of the call the transaction is for. */
type CallContext = EventContext | BatchContext;

// Kept beside the context rather than on it: only inbox handlers have a transaction, and the
// context (a folder below) stays free of the database.
const transactions = new WeakMap<CallContext, unknown>();

/** The dispatcher hands the attempt's open transaction to the handler call through its context. */
export function bindInboxTransaction(ctx: CallContext, tx: unknown): void {
  transactions.set(ctx, tx);
}

export function unbindInboxTransaction(ctx: CallContext): void {
  transactions.delete(ctx);
}

/** The open transaction of the handler call of `ctx`; throws outside an inbox handler's call. */
export function inboxTransactionOf(ctx: CallContext): unknown {
  const tx = transactions.get(ctx);
  if (tx === undefined) throw new Error(`${ctx.handler}: no inbox transaction is open for this call (a bug in nestjs-jetstream, or the transaction was used after the handler returned)`);
  return tx;
}
