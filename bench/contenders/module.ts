import { Injectable, Module, type DynamicModule, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { IsString, MaxLength } from 'class-validator';
import { z } from 'zod';
import { JetStreamModule, JetStreamPublisher, OnEvent, type BatchContext, type EventContext, type OnEventOptions } from '../../lib/index.js';
import { Finish, MODULE_OPTIONS, type CpuSpent } from '../support.js';

/** nestjs-jetstream as an application uses it: `@OnEvent` handlers and the injected publisher. */

export interface ModuleConsumer {
  readonly app: INestApplicationContext;
  /** Milliseconds from the first handled message to the `n`th. */
  readonly elapsed: Promise<number>;
  /** CPU spent over that section, once `elapsed` resolved. */
  readonly cpu: () => CpuSpent | undefined;
}

/** The bench's event as a validated class: the same 128-byte `{ pad }` object. */
export class PaddedEvent {
  @IsString()
  @MaxLength(1024)
  pad!: string;
}

/** The same event as a Zod 4 schema, the same constraints as `PaddedEvent`. */
export const PaddedEventSchema = z.object({ pad: z.string().max(1024) });

/**
 * How the handler declares its payload: `json` (an untyped parameter: parsed JSON), `binary`
 * (`Uint8Array`: the bytes, no decoding), `class` (`PaddedEvent`: class-transformer +
 * class-validator on every message) or `zod` (`{ schema: PaddedEventSchema }` on every message).
 */
export type PayloadKind = 'json' | 'binary' | 'class' | 'zod';

/** A Nest app with one `@OnEvent` handler that runs `body` and counts. */
export async function moduleConsumer(
  url: string,
  subject: string,
  n: number,
  options: OnEventOptions,
  body?: (payload: unknown, ctx: EventContext) => Promise<void> | void,
  kind: PayloadKind = 'json',
): Promise<ModuleConsumer> {
  const finish = new Finish(n);
  // One class per kind: the parameter's declared type is what the module reads.
  @Injectable()
  class JsonCounter {
    @OnEvent(subject, options)
    async handle(payload: unknown, ctx: EventContext) {
      finish.begin();
      if (body) await body(payload, ctx);
      finish.tick();
    }
  }
  @Injectable()
  class BinaryCounter {
    @OnEvent(subject, options)
    async handle(payload: Uint8Array, ctx: EventContext) {
      finish.begin();
      if (body) await body(payload, ctx);
      finish.tick();
    }
  }
  @Injectable()
  class ClassCounter {
    @OnEvent(subject, options)
    async handle(payload: PaddedEvent, ctx: EventContext) {
      finish.begin();
      if (body) await body(payload, ctx);
      finish.tick();
    }
  }
  @Injectable()
  class ZodCounter {
    @OnEvent(subject, { ...options, schema: PaddedEventSchema })
    async handle(payload: z.output<typeof PaddedEventSchema>, ctx: EventContext) {
      finish.begin();
      if (body) await body(payload, ctx);
      finish.tick();
    }
  }
  const counter = kind === 'binary' ? BinaryCounter : kind === 'class' ? ClassCounter : kind === 'zod' ? ZodCounter : JsonCounter;
  @Module({ imports: [JetStreamModule.forRoot({ ...MODULE_OPTIONS, servers: url }) as DynamicModule], providers: [counter] })
  class BenchModule {}
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: false });
  return { app, elapsed: finish.elapsed, cpu: () => finish.cpu };
}

/** A Nest app with one batch handler (`@OnEvent(…, { batch })`) that runs `body` on each batch and counts its messages. */
export async function moduleBatchConsumer(
  url: string,
  subject: string,
  n: number,
  options: OnEventOptions,
  body?: (payloads: unknown[], batch: BatchContext) => Promise<void>,
): Promise<ModuleConsumer> {
  const finish = new Finish(n);
  @Injectable()
  class BatchCounter {
    @OnEvent(subject, options)
    async handle(payloads: unknown[], batch: BatchContext) {
      finish.begin();
      if (body) await body(payloads, batch);
      finish.tick(payloads.length);
    }
  }
  @Module({ imports: [JetStreamModule.forRoot({ ...MODULE_OPTIONS, servers: url }) as DynamicModule], providers: [BatchCounter] })
  class BenchModule {}
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: false });
  return { app, elapsed: finish.elapsed, cpu: () => finish.cpu };
}

/** An app context holding only the module, for its publisher. */
export async function modulePublisher(url: string): Promise<{ publisher: JetStreamPublisher; close(): Promise<void> }> {
  @Module({ imports: [JetStreamModule.forRoot({ ...MODULE_OPTIONS, servers: url }) as DynamicModule] })
  class PublishModule {}
  const app = await NestFactory.createApplicationContext(PublishModule, { logger: false });
  return { publisher: app.get(JetStreamPublisher), close: () => app.close() };
}
