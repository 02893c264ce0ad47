import { randomBytes } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { JetStreamPublisher } from 'nestjs-jetstream';
import type { OrderCancelledEvent, OrderCreatedEvent } from '../orders/order-created.event.js';
import { OrderTracker } from '../tracking/order-tracker.service.js';

export interface PlacedOrders {
  readonly runId: string;
  readonly orderIds: readonly string[];
  readonly cancelledOrderId: string;
  readonly flakyOrderId: string;
}

const CATALOGUE = [
  { sku: 'KB-101', unitPriceCents: 4_990 },
  { sku: 'MS-220', unitPriceCents: 2_450 },
  { sku: 'HD-330', unitPriceCents: 8_900 },
  { sku: 'CB-040', unitPriceCents: 990 },
];

@Injectable()
export class CheckoutService {
  private readonly logger = new Logger(CheckoutService.name);

  constructor(
    private readonly publisher: JetStreamPublisher,
    private readonly tracker: OrderTracker,
  ) {}

  /**
   * Publishes `count` orders and cancels the last one. Order ids are unique per run: they are
   * the msg-ids, and a stream drops a msg-id it has already seen within its duplicate window.
   */
  async placeOrders(count: number): Promise<PlacedOrders> {
    const runId = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const orders = Array.from({ length: count }, (_, i) => this.makeOrder(runId, i));
    const orderIds = orders.map((o) => o.orderId);
    const flakyOrderId = orderIds[Math.min(1, count - 1)];
    const cancelledOrderId = orderIds[count - 1];

    // Registered before publishing, so no delivery of this run can arrive unaccounted for.
    this.tracker.expect(orderIds, { billing: count, shipping: count, audit: count + 1 }, flakyOrderId);

    const results = await this.publisher.publishBatch(
      orders.map((order) => ({
        subject: 'orders.created',
        payload: order,
        options: { msgId: order.orderId, headers: { 'x-sample-run': runId } },
      })),
    );
    for (const r of results) {
      if (!r.ok) throw r.error;
      this.logger.log(`published ${r.subject} -> stream ${r.result.stream} seq ${r.result.seq}`);
    }

    // Publishing again with the same msg-id (what a client does after a timeout) stores nothing new.
    const again = await this.publisher.publish('orders.created', orders[0], { msgId: orders[0].orderId });
    this.logger.log(`re-published ${orders[0].orderId} with the same msgId: duplicate=${again.duplicate}`);

    const cancelled: OrderCancelledEvent = {
      orderId: cancelledOrderId,
      reason: 'customer request',
      cancelledAt: new Date().toISOString(),
    };
    const ack = await this.publisher.publish('orders.cancelled', cancelled, { msgId: `${cancelledOrderId}-cancelled` });
    this.logger.log(`published orders.cancelled for ${cancelledOrderId} -> stream ${ack.stream} seq ${ack.seq}`);

    return { runId, orderIds, cancelledOrderId, flakyOrderId };
  }

  private makeOrder(runId: string, index: number): OrderCreatedEvent {
    const first = CATALOGUE[index % CATALOGUE.length];
    const second = CATALOGUE[(index + 2) % CATALOGUE.length];
    const lines = [
      { sku: first.sku, quantity: 1 + (index % 3), unitPriceCents: first.unitPriceCents },
      { sku: second.sku, quantity: 1, unitPriceCents: second.unitPriceCents },
    ];
    return {
      orderId: `ord-${runId}-${index + 1}`,
      customerId: `cust-${100 + index}`,
      lines,
      totalCents: lines.reduce((sum, l) => sum + l.quantity * l.unitPriceCents, 0),
      placedAt: new Date().toISOString(),
    };
  }
}
