import { Injectable, Logger } from '@nestjs/common';
import { BatchContext, OnEvent } from 'nestjs-jetstream';

/**
 * A batch handler: order events arrive up to 100 at a time (or what came within 200 ms), as a
 * bulk insert into an analytics store would want them. Resolving acks the whole batch; a
 * message marked with `batch.fail(i, error)` would be retried alone.
 */
@Injectable()
export class OrderAnalyticsService {
  private readonly logger = new Logger(OrderAnalyticsService.name);

  @OnEvent('orders.>', { durable: 'order-analytics', batch: { maxMessages: 100, maxWaitMs: 200 } })
  async ingest(events: Array<Record<string, unknown>>, batch: BatchContext<Record<string, unknown>>): Promise<void> {
    const first = batch.items[0].context.sequence;
    const last = batch.items[batch.size - 1].context.sequence;
    this.logger.log(`analytics: ${events.length} order event(s) in one call (stream ${batch.stream} seq ${first}..${last})`);
  }
}
