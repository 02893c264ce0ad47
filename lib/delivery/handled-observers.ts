import type { HandledEvent, HandledObserver } from './dispatcher.js';

/** The listeners of handler outcomes; `active` lets the hot path skip building events. */
export class HandledObservers implements HandledObserver {
  private readonly listeners = new Set<(event: HandledEvent) => void>();

  get active(): boolean {
    return this.listeners.size > 0;
  }

  add(listener: (event: HandledEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  notify(event: HandledEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // An observer must never change how a message is settled.
      }
    }
  }
}
