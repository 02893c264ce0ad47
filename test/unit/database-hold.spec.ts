import { runInNewContext } from 'node:vm';
import { DatabaseReachability } from '../../lib/inbox/database-reachability.js';
import { DatabaseHold } from '../../lib/inbox/database-hold.js';
import { isDatabaseUnavailable } from '../../lib/database/database-errors.js';
import { describeFailure } from '../../lib/errors/failure-description.js';

/** A logger that keeps its lines; a probe the test answers by hand. */
function setup() {
  const lines: Array<[string, string]> = [];
  const logger = { log: (m: string) => void lines.push(['log', m]), warn: (m: string) => void lines.push(['warn', m]), error: (m: string) => void lines.push(['error', m]) };
  let up = false;
  let probes = 0;
  const probe = async () => {
    probes++;
    if (!up) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  };
  const reachability = new DatabaseReachability(probe, 'jetstream_inbox', logger, { initialMs: 5, maxMs: 20 });
  return { lines, reachability, setUp: () => void (up = true), probes: () => probes };
}

const until = async (cond: () => boolean): Promise<void> => {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in 5 s');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('DatabaseReachability and DatabaseHold', () => {
  it('one probe loop and one warning for many waiters; all run again once a probe answers, logged once', async () => {
    const { lines, reachability, setUp, probes } = setup();
    const a = new DatabaseHold(reachability);
    const b = new DatabaseHold(reachability);
    const cause = new Error('connect ECONNREFUSED');
    const waits = [a.wait(cause), a.wait(cause), b.wait(cause)];
    await until(() => probes() >= 3);
    setUp();
    await expect(Promise.all(waits)).resolves.toEqual([true, true, true]);
    expect(lines.filter(([l]) => l === 'warn')).toHaveLength(1);
    expect(lines.filter(([l]) => l === 'warn')[0][1]).toContain('jetstream_inbox: the database cannot be reached (connect ECONNREFUSED)');
    expect(lines.filter(([l]) => l === 'log').map(([, m]) => m)).toEqual([expect.stringMatching(/answers again after \d+ ms; 3 waiting attempt\(s\) run now/)]);
    // A later outage is a new one: logged again.
    const next = setup();
    void new DatabaseHold(next.reachability).wait(cause);
    expect(next.lines).toHaveLength(1);
    next.reachability.close();
  });

  it('stop hands the waiting messages back (false) and refuses new waits', async () => {
    const { reachability } = setup();
    const hold = new DatabaseHold(reachability);
    const waiting = hold.wait(new Error('down'));
    hold.stop();
    await expect(waiting).resolves.toBe(false);
    await expect(hold.wait(new Error('down'))).resolves.toBe(false);
    reachability.close();
  });

  it('an Error made in another realm (Node socket errors under a VM context) is an error and, with its code, an outage', () => {
    const foreign = runInNewContext('Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" })') as unknown;
    expect(foreign instanceof Error).toBe(false);
    expect(isDatabaseUnavailable(foreign)).toBe(true);
    expect(describeFailure(foreign)).toBe('Error: connect ECONNREFUSED 127.0.0.1:5432');
    expect(isDatabaseUnavailable({ code: '42P01', message: 'relation does not exist' })).toBe(false);
    expect(isDatabaseUnavailable('ECONNREFUSED')).toBe(false);
  });
});
