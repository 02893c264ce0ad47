import type { Logger } from '@nestjs/common';
import { BatchDispatcher } from '../batch/batch-dispatcher.js';
import type { DeadLetterSink } from '../dead-letters/dead-letter-sink.js';
import type { HandledObserver } from '../delivery/dispatcher.js';
import { FailurePolicy } from '../delivery/failure-policy.js';
import type { Settlement } from '../delivery/settlement.js';
import type { HandlerPlan } from '../discovery/handler-plan.js';
import type { HandlerInstrumentation } from '../observability/instrumentation.js';
import type { ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import { createPayloadDecoder } from '../serialization/payload-decoder.js';
import { JetStreamPayloadPipe } from '../serialization/payload-validation.pipe.js';
import type { BatchFeed } from './batch-assembler.js';

/** A batch handler's feed: its limits and the dispatcher that runs and settles each batch. */
export function createBatchFeed(
  plan: HandlerPlan,
  consumer: string,
  parts: { readonly sink: DeadLetterSink | undefined; readonly instrumentation: HandlerInstrumentation | undefined },
  settlement: Settlement,
  options: ResolvedModuleOptions,
  observer: HandledObserver,
  logger: Logger,
): BatchFeed {
  const batch = plan.options.batch!;
  const payloadType = batch.payloadType;
  const dispatcher = new BatchDispatcher(
    { stream: plan.stream, consumer, durable: plan.options.durable, handlerId: plan.handlerId },
    { policy: new FailurePolicy(plan.options), ...parts },
    createPayloadDecoder(payloadType),
    plan.invoke,
    settlement,
    {
      itemPipe: JetStreamPayloadPipe.appliesTo(payloadType)
        ? { pipe: new JetStreamPayloadPipe(options.validation, options.transform), metadata: { type: 'body', metatype: payloadType, data: undefined } }
        : undefined,
      observer,
    },
    logger,
  );
  return { maxMessages: batch.maxMessages, maxWaitMs: batch.maxWaitMs, dispatch: (msgs) => dispatcher.dispatch(msgs) };
}
