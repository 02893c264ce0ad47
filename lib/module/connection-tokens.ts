import { Inject } from '@nestjs/common';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import { DeadLetterService } from '../dead-letters/dead-letter.service.js';
import { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import { JetStreamLifecycle } from './jetstream-lifecycle.js';
import { ConsumerControl } from './consumer-control.js';
import { JetStreamSchedules } from '../scheduling/jetstream-schedules.js';
import { DEFAULT_CONNECTION, isDefaultConnection, JETSTREAM_RESOLVED_OPTIONS } from '../options/jetstream.tokens.js';

// The default connection keeps the class tokens, so `constructor(publisher: JetStreamPublisher)`
// works without decorators; a named connection's providers are exported under string tokens so
// two global module instances never export the same token.
/**
 * A token every connection, the default one included, provides its parts under. Class tokens
 * are ambiguous to `app.get(Class)` once several connections exist (each module instance holds
 * its own provider of the class); this one never is.
 */
export function scopedToken(kind: ScopedKind, name = DEFAULT_CONNECTION): string {
  return `nestjs-jetstream:${name}:${kind}`;
}
export type ScopedKind = 'publisher' | 'dead-letters' | 'connection' | 'lifecycle' | 'options' | 'consumers' | 'schedules';

const tokenFor = <T>(kind: ScopedKind, defaultToken: T) => (name?: string): T | string =>
  isDefaultConnection(name) ? defaultToken : scopedToken(kind, name);

/** Injection token of the `JetStreamPublisher` of a named connection (the class for the default one). */
export const getPublisherToken = tokenFor('publisher', JetStreamPublisher);
/** Injection token of the `DeadLetterService` of a named connection. */
export const getDeadLetterServiceToken = tokenFor('dead-letters', DeadLetterService);
/** Injection token of the `JetStreamConnection` of a named connection. */
export const getConnectionToken = tokenFor('connection', JetStreamConnection);
/** Injection token of the `JetStreamLifecycle` (running handlers, handled events) of a named connection. */
export const getLifecycleToken = tokenFor('lifecycle', JetStreamLifecycle);
/** Injection token of the `ConsumerControl` (pause and resume) of a named connection. */
export const getConsumerControlToken = tokenFor('consumers', ConsumerControl);
/** Injection token of the `JetStreamSchedules` (list, get, cancel) of a named connection. */
export const getSchedulesToken = tokenFor('schedules', JetStreamSchedules);
/** Injection token of the resolved options of a named connection. */
export const getOptionsToken = tokenFor('options', JETSTREAM_RESOLVED_OPTIONS);

/** `@InjectPublisher('analytics') publisher: JetStreamPublisher`; no name: the default connection. */
export const InjectPublisher = (name?: string): ParameterDecorator & PropertyDecorator => Inject(getPublisherToken(name));
/** `@InjectDeadLetters('analytics') deadLetters: DeadLetterService`. */
export const InjectDeadLetters = (name?: string): ParameterDecorator & PropertyDecorator => Inject(getDeadLetterServiceToken(name));
/** `@InjectJetStreamConnection('analytics') connection: JetStreamConnection`. */
export const InjectJetStreamConnection = (name?: string): ParameterDecorator & PropertyDecorator =>
  Inject(getConnectionToken(name));
