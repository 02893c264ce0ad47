import type { Logger } from '@nestjs/common';
import { BatchDispatcher, type BatchDispatcherOptions } from '../batch/batch-dispatcher.js';
import type { DeadLetterSink } from '../dead-letters/dead-letter-sink.js';
import type { HandledObserver } from '../delivery/dispatcher.js';
import { FailurePolicy } from '../delivery/failure-policy.js';
import type { Settlement } from '../delivery/settlement.js';
import type { HandlerPlan } from '../discovery/handler-plan.js';
import type { InboxStore } from '../inbox/inbox-store.js';
import type { DatabaseHold } from '../inbox/database-hold.js';
import type { HandlerInstrumentation } from '../observability/instrumentation.js';
import type { ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import { createPayloadDecoder } from '../serialization/payload-decoder.js';
import { JetStreamPayloadPipe } from '../serialization/payload-validation.pipe.js';
import { StandardSchemaPipe } from '../serialization/standard-schema.pipe.js';
import type { BatchFeed } from './batch-assembler.js';

/** A batch handler's feed: its limits and the dispatcher that runs and settles each batch. */
export function createBatchFeed(
  plan: HandlerPlan,
  consumer: string,
  parts: { readonly sink: DeadLetterSink | undefined; readonly instrumentation: HandlerInstrumentation | undefined; readonly inbox: InboxStore | undefined; readonly databaseHold?: DatabaseHold },
  settlement: Settlement,
  options: ResolvedModuleOptions,
  observer: HandledObserver,
  logger: Logger,
): BatchFeed {
  const batch = plan.options.batch!;
  const payloadType = batch.payloadType;
  const { inbox, databaseHold, ...runtime } = parts;
  const dispatcher = new BatchDispatcher(
    { stream: plan.stream, consumer, durable: plan.options.durable, handlerId: plan.handlerId },
    { policy: new FailurePolicy(plan.options), ...runtime },
    // Each message decodes as a single handler's would: its content type, codec, and upcasts.
    createPayloadDecoder(payloadType, { fallback: plan.options.codec ?? options.codec, codecs: options.codecs, schemaVersion: plan.options.schemaVersion }),
    plan.invoke,
    settlement,
    { itemPipe: itemPipe(plan, options), inbox, databaseHold, observer },
    logger,
  );
  return { maxMessages: batch.maxMessages, maxWaitMs: batch.maxWaitMs, dispatch: (msgs) => dispatcher.dispatch(msgs) };
}

/** Validates one message of the batch: the handler's Standard Schema, else `batch.payloadType`'s class. */
function itemPipe(plan: HandlerPlan, options: ResolvedModuleOptions): BatchDispatcherOptions['itemPipe'] {
  const payloadType = plan.options.batch!.payloadType;
  const metadata = { type: 'body' as const, metatype: payloadType, data: undefined };
  if (plan.options.schema) return { pipe: new StandardSchemaPipe(plan.options.schema), metadata };
  if (JetStreamPayloadPipe.appliesTo(payloadType)) return { pipe: new JetStreamPayloadPipe(options.validation, options.transform), metadata };
  return undefined;
}
