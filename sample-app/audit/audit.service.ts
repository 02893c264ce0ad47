import { Injectable, Logger } from '@nestjs/common';
import { EventContext, OnEvent } from 'nestjs-jetstream';
import { OrderTracker } from '../tracking/order-tracker.service.js';

@Injectable()
export class AuditService {
  private readonly logger = new Logger(AuditService.name);

  constructor(private readonly tracker: OrderTracker) {}

  /**
   * Every order event, whatever its type. The parameter is a plain object type, so the payload
   * arrives as parsed JSON without class validation.
   */
  @OnEvent('orders.>', { durable: 'audit' })
  async record(event: Record<string, unknown>, ctx: EventContext): Promise<void> {
    const orderId = event?.orderId;
    this.tracker.delivered('audit', orderId, ctx.redelivered);
    if (!this.tracker.isThisRun(orderId)) return; // backlog from an earlier run: ack and move on
    this.logger.log(
      `${ctx.subject} ${orderId} | stream ${ctx.stream} seq ${ctx.sequence} | msgId ${ctx.msgId ?? '-'} | stored ${ctx.timestamp.toISOString()}`,
    );
    this.tracker.handled('audit', ctx.subject, orderId);
  }
}
