import { Injectable, Logger } from '@nestjs/common';
import { EventContext, OnEvent } from 'nestjs-jetstream';
import { OrderCreatedEvent } from '../orders/order-created.event.js';
import { OrderTracker } from '../tracking/order-tracker.service.js';

/** A failure worth retrying: the module naks the message and the server redelivers it later. */
export class CarrierUnavailableError extends Error {
  override readonly name = 'CarrierUnavailableError';
}

@Injectable()
export class ShippingService {
  private readonly logger = new Logger(ShippingService.name);

  constructor(private readonly tracker: OrderTracker) {}

  /**
   * Durable "shipping". One order of each run fails on its first delivery, as if the carrier's
   * API were briefly down: the handler throws, the module naks with a backoff delay (about
   * 0.5–1 s for a first failure) and the server delivers the message again.
   */
  @OnEvent('orders.created', { durable: 'shipping' })
  async ship(event: OrderCreatedEvent, ctx: EventContext): Promise<void> {
    this.tracker.delivered('shipping', event.orderId, ctx.redelivered);
    if (!this.tracker.isThisRun(event.orderId)) return; // backlog from an earlier run: ack and move on

    if (event.orderId === this.tracker.flakyOrderId && ctx.deliveryCount === 1) {
      this.logger.warn(`carrier API unavailable while booking ${event.orderId}; throwing so the message is retried`);
      throw new CarrierUnavailableError(`carrier API returned 503 for ${event.orderId}`);
    }
    if (ctx.redelivered) {
      this.logger.log(`retry: ${event.orderId} is on delivery ${ctx.deliveryCount} (redelivered=${ctx.redelivered})`);
    }
    const items = event.lines.reduce((n, line) => n + line.quantity, 0);
    this.logger.log(`booked shipment of ${items} item(s) for ${event.orderId} (stream seq ${ctx.sequence})`);
    this.tracker.handled('shipping', ctx.subject, event.orderId);
  }
}
