/**
 * A counting semaphore whose fast path allocates nothing: `acquire()` returns undefined when a
 * slot is free, and a promise only when the caller has to wait.
 */
export class ConcurrencyGate {
  private active = 0;
  private readonly waiters: Array<() => void> = [];
  private opened = false;

  constructor(private readonly limit: number) {}

  get inFlight(): number {
    return this.active;
  }

  acquire(): Promise<void> | undefined {
    if (this.opened || this.active < this.limit) {
      this.active++;
      return undefined;
    }
    // The releasing caller hands its slot straight to the waiter, so no one can slip in between.
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.active--;
  }

  /** Lets every waiter through at once, so a stopping loop is never stuck behind a hung handler. */
  open(): void {
    this.opened = true;
    for (const waiter of this.waiters.splice(0)) {
      this.active++;
      waiter();
    }
  }
}
