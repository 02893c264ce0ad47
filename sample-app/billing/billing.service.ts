import { Injectable, Logger } from '@nestjs/common';
import { EventContext, OnEvent } from 'nestjs-jetstream';
import { OrderCreatedEvent } from '../orders/order-created.event.js';
import { OrderTracker } from '../tracking/order-tracker.service.js';

@Injectable()
export class BillingService {
  private readonly logger = new Logger(BillingService.name);

  constructor(private readonly tracker: OrderTracker) {}

  /**
   * Durable "billing": every instance of this service shares one consumer, so each order is
   * charged by exactly one of them, and orders published while billing is down wait for it.
   */
  @OnEvent('orders.created', { durable: 'billing' })
  async charge(event: OrderCreatedEvent, ctx: EventContext): Promise<void> {
    this.tracker.delivered('billing', event.orderId, ctx.redelivered);
    if (!this.tracker.isThisRun(event.orderId)) return; // backlog from an earlier run: ack and move on
    // `event` is an OrderCreatedEvent instance that passed class-validator.
    this.logger.log(
      `charged ${formatCents(event.totalCents)} to ${event.customerId} for ${event.orderId} (stream seq ${ctx.sequence})`,
    );
    this.tracker.handled('billing', ctx.subject, event.orderId);
  }
}

function formatCents(cents: number): string {
  return `${(cents / 100).toFixed(2)} EUR`;
}
