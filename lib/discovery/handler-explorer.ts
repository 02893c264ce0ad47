import { Injectable } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import type { OnEventOptions } from '../decorators/on-event-options.js';
import { takesInboxTransaction } from '../decorators/event-params.decorator.js';
import { HandlerConfigurationError } from '../errors/jetstream-errors.js';
import { DEFAULT_CONNECTION } from '../options/jetstream.tokens.js';
import type { DiscoveredHandler } from './handler-plan.js';
import { readOnEventHandlers } from './on-event-metadata.accessor.js';
import { resolveHandlerOptions } from './resolve-handler-options.js';

/** Finds `@OnEvent` methods on every provider and controller of the application. */
@Injectable()
export class HandlerExplorer {
  constructor(private readonly discovery: DiscoveryService) {}

  /**
   * Handlers bound to `connection` (`@OnEvent(..., { connection })`, none = the default one).
   * `knownConnections` are the names of every JetStreamModule instance of the application: a
   * handler naming another connection fails startup instead of silently never running.
   */
  explore(defaults: Partial<OnEventOptions>, connection = DEFAULT_CONNECTION, knownConnections: ReadonlySet<string> = new Set([connection])): DiscoveredHandler[] {
    const found: DiscoveredHandler[] = [];
    // The same instance can sit behind several wrappers (aliases, re-exports).
    const seen = new Set<object>();
    const wrappers = [...this.discovery.getProviders(), ...this.discovery.getControllers()];
    for (const wrapper of wrappers) {
      const instance: unknown = wrapper.instance;
      if (!instance || typeof instance !== 'object' || seen.has(instance)) continue;
      const prototype = Object.getPrototypeOf(instance) as object | null;
      if (!prototype) continue;
      const declared = readOnEventHandlers(prototype, instance.constructor.name);
      if (declared.length === 0) continue;
      if (!wrapper.isDependencyTreeStatic()) {
        throw new HandlerConfigurationError(
          `@OnEvent on ${declared[0].handlerId}: handlers must live on singleton providers; ${instance.constructor.name} is request- or transient-scoped`,
        );
      }
      seen.add(instance);
      for (const { handlerId, methodName, subject, options, payloadType } of declared) {
        const target = options.connection ?? DEFAULT_CONNECTION;
        if (!knownConnections.has(target)) {
          throw new HandlerConfigurationError(
            target === DEFAULT_CONNECTION
              ? `@OnEvent on ${handlerId} uses the default connection, but only named connections are configured (${[...knownConnections].join(', ')}): import JetStreamModule.forRoot() without a name, or set { connection } on the handler`
              : `@OnEvent on ${handlerId} names connection "${target}", but no JetStreamModule.forRoot({ name: "${target}" }) is imported (configured: ${[...knownConnections].join(', ')})`,
          );
        }
        if (target !== connection) continue;
        if (!options.inbox && takesInboxTransaction(prototype, methodName)) {
          throw new HandlerConfigurationError(`@OnEvent on ${handlerId}: @InboxTransaction() needs the inbox (add inbox: true to its options)`);
        }
        found.push({ handlerId, instance, methodName, subject, options: resolveHandlerOptions(handlerId, defaults, options), payloadType });
      }
    }
    return found;
  }
}
