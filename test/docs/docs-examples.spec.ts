import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// README.md and docs/*.md: every ```ts block compiles against lib/ (scripts/check-docs.mjs), so a
// renamed option or method fails the suite instead of leaving a stale example behind.
describe('documentation examples', () => {
  it('type-check against the library', () => {
    const script = fileURLToPath(new URL('../../scripts/check-docs.mjs', import.meta.url));
    const run = spawnSync(process.execPath, [script], { encoding: 'utf8' });
    const output = `${run.stdout}${run.stderr}`;
    expect({ status: run.status, output }).toEqual({ status: 0, output: expect.stringMatching(/TypeScript blocks checked, 0 problem/) });
    // A checker that found no blocks would pass vacuously.
    expect(Number(/docs: (\d+) TypeScript blocks/.exec(output)?.[1])).toBeGreaterThan(20);
  });
});
