import {
  Body,
  type CallHandler,
  type CanActivate,
  Controller,
  type ExecutionContext,
  HttpCode,
  Injectable,
  type NestInterceptor,
  Post,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { IsInt, IsString, Min } from 'class-validator';
import { EventContext, JetStreamPublisher, OnEvent } from 'nestjs-jetstream';
import type { Observable } from 'rxjs';

export class OrderPlaced {
  @IsString() id!: string;
  @IsInt() @Min(1) cents!: number;
}

/** Every field of the handler's EventContext, read the way a handler reads it. */
export interface SeenOrder {
  readonly isOrderPlaced: boolean;
  readonly id: string;
  readonly isEventContext: boolean;
  readonly subject: string;
  readonly stream: string;
  readonly sequence: number;
  readonly deliveryCount: number;
  readonly attempt: number;
  readonly redelivered: boolean;
  readonly timestamp: string;
  readonly msgId: string | undefined;
  readonly consumer: string;
  readonly durable: string | undefined;
  readonly handler: string;
  readonly headerNames: string[];
  readonly traceHeader: string | undefined;
  readonly messageSeq: number;
}

@Injectable()
export class OrdersGuard implements CanActivate {
  calls = 0;
  canActivate(_context: ExecutionContext): boolean {
    this.calls++;
    return true;
  }
}

@Injectable()
export class OrdersInterceptor implements NestInterceptor {
  calls = 0;
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    this.calls++;
    return next.handle();
  }
}

@Injectable()
export class OrdersHandler {
  readonly seen: SeenOrder[] = [];

  // A guard, a method interceptor and (from main.ts / the spec) the global ValidationPipe: on
  // Nest 11 any enhancer once cost the handler its EventContext (issue 20, item 1).
  @OnEvent('shop.orders.placed', { durable: 'compat-orders', retry: { maxAttempts: 2, initialDelayMs: 100 } })
  @UseGuards(OrdersGuard)
  @UseInterceptors(OrdersInterceptor)
  onPlaced(order: OrderPlaced, ctx: EventContext): void {
    ctx.working();
    this.seen.push({
      isOrderPlaced: order instanceof OrderPlaced,
      id: order.id,
      isEventContext: ctx instanceof EventContext,
      subject: ctx.subject,
      stream: ctx.stream,
      sequence: ctx.sequence,
      deliveryCount: ctx.deliveryCount,
      attempt: ctx.attempt,
      redelivered: ctx.redelivered,
      timestamp: ctx.timestamp.toISOString(),
      msgId: ctx.msgId,
      consumer: ctx.consumer,
      durable: ctx.durable,
      handler: ctx.handler,
      headerNames: Object.keys(ctx.headers),
      traceHeader: ctx.header('X-Compat-Trace'),
      messageSeq: ctx.message.seq,
    });
  }
}

@Controller('orders')
export class OrdersController {
  constructor(private readonly publisher: JetStreamPublisher) {}

  @Post()
  @HttpCode(202)
  async place(@Body() order: OrderPlaced): Promise<{ seq: number }> {
    const ack = await this.publisher.publish('shop.orders.placed', order, { msgId: `order-${order.id}`, headers: { 'X-Compat-Trace': `trace-${order.id}` } });
    return { seq: ack.seq };
  }
}

/** What a correct delivery of order `id`, stored at `seq`, looks like; throws on any difference. */
export function expectSeenOrder(seen: SeenOrder | undefined, id: string, seq: number): void {
  const expected: SeenOrder = {
    isOrderPlaced: true,
    id,
    isEventContext: true,
    subject: 'shop.orders.placed',
    stream: 'SHOP',
    sequence: seq,
    deliveryCount: 1,
    attempt: 1,
    redelivered: false,
    timestamp: seen?.timestamp ?? 'a stored time',
    msgId: `order-${id}`,
    consumer: 'compat-orders',
    durable: 'compat-orders',
    handler: 'OrdersHandler.onPlaced',
    headerNames: seen?.headerNames ?? [],
    traceHeader: `trace-${id}`,
    messageSeq: seq,
  };
  const problems = seen
    ? Object.keys(expected).filter((key) => JSON.stringify(seen[key as keyof SeenOrder]) !== JSON.stringify(expected[key as keyof SeenOrder]))
    : ['the handler never ran'];
  if (seen && Number.isNaN(Date.parse(seen.timestamp))) problems.push('timestamp');
  if (seen && !seen.headerNames.includes('X-Compat-Trace')) problems.push('headers');
  if (problems.length > 0) throw new Error(`wrong delivery (${problems.join(', ')}): ${JSON.stringify(seen)}`);
}
