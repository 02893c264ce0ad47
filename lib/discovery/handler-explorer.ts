import { Injectable } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { OnEventOptions } from '../decorators/on-event-options.js';
import { getOnEventMetadata } from '../decorators/on-event.decorator.js';
import { HandlerConfigurationError, InvalidOptionsError } from '../errors/jetstream-errors.js';
import { assertFilterSubject } from '../producer/subject-validation.js';
import type { DiscoveredHandler } from './handler-plan.js';
import { resolveHandlerOptions } from './resolve-handler-options.js';

/** Finds `@OnEvent` methods on every provider and controller of the application. */
@Injectable()
export class HandlerExplorer {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
  ) {}

  explore(defaults: Partial<OnEventOptions>): DiscoveredHandler[] {
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
        const paramTypes: unknown[] = Reflect.getMetadata('design:paramtypes', prototype, methodName) ?? [];
        for (const { subject, options } of metadata) {
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
            payloadType: paramTypes[0],
          });
        }
      }
    }
    return found;
  }
}
