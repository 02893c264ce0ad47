import { randomBytes } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { JetStreamOutbox, JetStreamPublisher } from 'nestjs-jetstream';
import { SAMPLE_DATABASE, TABLES, type SampleDatabase, type SqlTransaction } from '../database/sample-database.js';
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
    private readonly outbox: JetStreamOutbox<SqlTransaction>,
    @Inject(SAMPLE_DATABASE) private readonly db: SampleDatabase,
    private readonly tracker: OrderTracker,
  ) {}

  /**
   * Places `count` orders, each in one database transaction that writes its `orders` row and
   * records `orders.created` in the outbox; the relay publishes each event once its transaction
   * has committed. Then cancels the last order with a direct publish. Order ids are unique per
   * run: they are the msg-ids, which the stream and the billing inbox dedupe on.
   */
  async placeOrders(count: number): Promise<PlacedOrders> {
    const runId = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const orders = Array.from({ length: count }, (_, i) => this.makeOrder(runId, i));
    const orderIds = orders.map((o) => o.orderId);
    const flakyOrderId = orderIds[Math.min(1, count - 1)];
    const cancelledOrderId = orderIds[count - 1];

    // Registered before anything is committed, so no delivery of this run can arrive unaccounted for.
    this.tracker.expect(orderIds, { billing: count, shipping: count, audit: count + 1 }, flakyOrderId);

    for (const order of orders) {
      const recorded = await this.checkout(order, runId);
      this.logger.log(`committed order ${order.orderId} and its orders.created (outbox row recorded=${recorded})`);
    }

    // Recording the same msgId again (a retried request) stores nothing new: the outbox row's
    // primary key is the msgId, so the event is still relayed once.
    const again = await this.checkout(orders[0], runId);
    this.logger.log(`checked out ${orders[0].orderId} again with the same msgId: outbox row recorded=${again}`);

    const cancelled: OrderCancelledEvent = {
      orderId: cancelledOrderId,
      reason: 'customer request',
      cancelledAt: new Date().toISOString(),
    };
    const ack = await this.publisher.publish('orders.cancelled', cancelled, { msgId: `${cancelledOrderId}-cancelled` });
    this.logger.log(`published orders.cancelled for ${cancelledOrderId} -> stream ${ack.stream} seq ${ack.seq}`);

    return { runId, orderIds, cancelledOrderId, flakyOrderId };
  }

  /** The order row and its event commit together, or neither does. Returns whether a new outbox row was recorded. */
  private checkout(order: OrderCreatedEvent, runId: string): Promise<boolean> {
    return this.db.transaction(async (sql, tx) => {
      await sql.query(
        `INSERT INTO ${TABLES.orders} (id, customer_id, total_cents, placed_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`,
        [order.orderId, order.customerId, order.totalCents, order.placedAt],
      );
      const { recorded } = await this.outbox.publish(tx, 'orders.created', order, {
        msgId: order.orderId,
        key: order.customerId,
        headers: { 'x-sample-run': runId },
      });
      return recorded;
    });
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
