import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

// The folder layering written in lib/README.md, enforced: every import between two folders of
// lib/ goes to a lower line of the list. A folder missing from the list fails too, so a new one
// has to be placed.
const lib = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib');

function layers(): Map<string, number> {
  const readme = readFileSync(join(lib, 'README.md'), 'utf8');
  const block = /```layers\n([\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('lib/README.md has no ```layers block');
  const rank = new Map<string, number>();
  block[1].trim().split('\n').forEach((line, i) => line.trim().split(/\s+/).forEach((folder) => rank.set(folder, i)));
  return rank;
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

const folderOf = (file: string) => {
  const parts = relative(lib, file).split('/');
  return parts.length > 1 ? parts[0] : undefined;
};

describe('lib/ layering', () => {
  const rank = layers();
  const files = sources(lib);

  it('places every folder of lib/ in the list', () => {
    const folders = new Set(files.map(folderOf).filter((f): f is string => f !== undefined));
    expect([...folders].filter((f) => !rank.has(f)).sort()).toEqual([]);
  });

  it('imports only downwards', () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = folderOf(file);
      if (from === undefined) continue; // index.ts: the public entry, above everything
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)) {
        const to = folderOf(normalize(join(dirname(file), m[1])));
        if (to === undefined || to === from) continue;
        if (!(rank.get(to)! > rank.get(from)!)) violations.push(`${relative(lib, file)} imports ${m[1]} (${from} -> ${to})`);
      }
    }
    expect(violations).toEqual([]);
  });
});
