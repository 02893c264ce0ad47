import { Injectable } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { OnEventOptions } from '../decorators/on-event-options.js';
import { getOnEventMetadata } from '../decorators/on-event.decorator.js';
import { HandlerConfigurationError, InvalidOptionsError } from '../errors/jetstream-errors.js';
import { DEFAULT_CONNECTION } from '../module/jetstream.tokens.js';
import { assertFilterSubject } from '../producer/subject-validation.js';
import type { DiscoveredHandler } from './handler-plan.js';
import { resolveHandlerOptions } from './resolve-handler-options.js';
import { payloadParameterType } from '../decorators/event-params.decorator.js';

/** Finds `@OnEvent` methods on every provider and controller of the application. */
@Injectable()
export class HandlerExplorer {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
  ) {}

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
      const methods = this.scanner.getAllMethodNames(prototype);
      for (const methodName of methods) {
        const method = (prototype as Record<string, unknown>)[methodName];
        const metadata = getOnEventMetadata(method);
        if (!metadata?.length) continue;
        const handlerId = `${instance.constructor.name}.${methodName}`;
        if (!wrapper.isDependencyTreeStatic()) {
          throw new HandlerConfigurationError(
            `@OnEvent on ${handlerId}: handlers must live on singleton providers; ${instance.constructor.name} is request- or transient-scoped`,
          );
        }
        seen.add(instance);
        const payloadType = payloadParameterType(prototype, methodName);
        for (const { subject, options } of metadata) {
          const target = options.connection ?? DEFAULT_CONNECTION;
          if (!knownConnections.has(target)) {
            throw new HandlerConfigurationError(
              target === DEFAULT_CONNECTION
                ? `@OnEvent on ${handlerId} uses the default connection, but only named connections are configured (${[...knownConnections].join(', ')}): import JetStreamModule.forRoot() without a name, or set { connection } on the handler`
                : `@OnEvent on ${handlerId} names connection "${target}", but no JetStreamModule.forRoot({ name: "${target}" }) is imported (configured: ${[...knownConnections].join(', ')})`,
            );
          }
          if (target !== connection) continue;
          try {
            assertFilterSubject(subject);
          } catch (err) {
            throw new InvalidOptionsError(`@OnEvent on ${handlerId}: ${(err as Error).message}`);
          }
          found.push({
            handlerId,
            instance,
            methodName,
            subject,
            options: resolveHandlerOptions(handlerId, defaults, options),
            payloadType,
          });
        }
      }
    }
    return found;
  }
}
