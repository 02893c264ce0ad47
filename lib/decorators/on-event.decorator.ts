import type { OnEventOptions } from './on-event-options.js';

export const ON_EVENT_METADATA = 'nestjs-jetstream:on-event';

export interface OnEventMetadata {
  readonly subject: string;
  readonly options: OnEventOptions;
}

/**
 * Subscribes the decorated method to a JetStream subject. Stacking several `@OnEvent` on one
 * method gives it one consumer per subject.
 */
export function OnEvent(subject: string, options: OnEventOptions = {}): MethodDecorator {
  return (_target, _key, descriptor: PropertyDescriptor) => {
    const method = descriptor.value as object;
    const existing: OnEventMetadata[] = Reflect.getMetadata(ON_EVENT_METADATA, method) ?? [];
    Reflect.defineMetadata(ON_EVENT_METADATA, [...existing, { subject, options }], method);
    return descriptor;
  };
}

/**
 * `@OnEvent` under a name no other package uses: `@nestjs/event-emitter` also exports an
 * `OnEvent`, and an IDE's auto-import can pick that one, which compiles and never consumes.
 */
export const OnJetStreamEvent: typeof OnEvent = OnEvent;

export function getOnEventMetadata(method: unknown): readonly OnEventMetadata[] | undefined {
  if (typeof method !== 'function') return undefined;
  return Reflect.getMetadata(ON_EVENT_METADATA, method);
}
