import { Injectable, Logger } from '@nestjs/common';
import { EventContext, InboxTransaction, OnEvent } from 'nestjs-jetstream';
import { TABLES, type SqlTransaction } from '../database/sample-database.js';
import { OrderCreatedEvent } from '../orders/order-created.event.js';
import { OrderTracker } from '../tracking/order-tracker.service.js';

@Injectable()
export class BillingService {
  private readonly logger = new Logger(BillingService.name);

  constructor(private readonly tracker: OrderTracker) {}

  /**
   * Durable "billing" with the inbox: the charge row and the inbox row of this message commit
   * in one transaction (`tx`), and the message is acked after that commit. A redelivery or a
   * second copy of an order finds its inbox row and is acked without charging again.
   */
  @OnEvent('orders.created', { durable: 'billing', inbox: true })
  async charge(event: OrderCreatedEvent, ctx: EventContext, @InboxTransaction() tx: SqlTransaction): Promise<void> {
    this.tracker.delivered('billing', event.orderId, ctx.redelivered);
    if (!this.tracker.isThisRun(event.orderId)) return; // backlog from an earlier run: ack and move on
    // `event` is an OrderCreatedEvent instance that passed class-validator.
    await tx.query(`INSERT INTO ${TABLES.charges} (order_id, amount_cents) VALUES ($1, $2)`, [event.orderId, event.totalCents]);
    this.logger.log(
      `charged ${formatCents(event.totalCents)} to ${event.customerId} for ${event.orderId} (stream seq ${ctx.sequence}, msgId ${ctx.msgId ?? '-'})`,
    );
    this.tracker.handled('billing', ctx.subject, event.orderId);
  }
}

function formatCents(cents: number): string {
  return `${(cents / 100).toFixed(2)} EUR`;
}

