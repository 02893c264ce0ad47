/** Headers nats-server reads on a schedule message (ADR-51), and writes on the messages it fires. */
export const ScheduleHeaders = {
  Schedule: 'Nats-Schedule',
  Target: 'Nats-Schedule-Target',
  TimeZone: 'Nats-Schedule-Time-Zone',
  /** On a fired message: the schedule subject that fired it. */
  Scheduler: 'Nats-Scheduler',
  /** On a fired message: the next firing, or `purge` after a one-shot. */
  Next: 'Nats-Schedule-Next',
} as const;

/**
 * The schedule's name in a `Nats-Scheduler` value: `_schedules.<stream>.<name>` is where the
 * module stores schedules; any other subject (a schedule stored by hand) is its own name.
 */
export function scheduleNameOf(scheduler: string): string {
  const tokens = scheduler.split('.');
  return tokens.length >= 3 && tokens[0] === '_schedules' ? tokens.slice(2).join('.') : scheduler;
}
