// Type-checks every ```ts block of README.md and docs/*.md against the library's sources, so a
// renamed option or method cannot leave a stale example behind, and checks that every relative
// link of those pages reaches a file and, with an anchor, a heading of it.
//
// Each block is its own module. A block whose first line is a file-name comment (`// billing.service.ts`)
// is written under that name, so blocks of one page can import each other ('./billing.service.js').
// Names a snippet takes from its surroundings (an injected `publisher`, an `order`, the `app`) are
// declared once, in test/docs/doc-context.d.ts. A block fenced as ```ts file=PATH shows a file of the
// repository that a run already proves (a compat app's config needing packages this repository does
// not install): it must equal that file.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, '.cache', 'doc-examples');

export function extractBlocks(markdown) {
  const blocks = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```ts(?:\s+(.*))?$/.exec(lines[i]);
    if (!open) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !lines[end].startsWith('```')) end++;
    const file = /(?:^|\s)file=(\S+)/.exec(open[1] ?? '')?.[1];
    blocks.push({ line: start + 1, code: lines.slice(start, end).join('\n'), file });
    i = end;
  }
  return blocks;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading) {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\- _]/gu, '').replace(/ /g, '-');
}

/** Relative links of the pages, each to a file that exists and, with `#anchor`, to a heading it has. */
function brokenLinks(pages) {
  const anchors = new Map();
  const anchorsOf = (file) => {
    if (!anchors.has(file)) {
      let fence = false;
      const found = new Set();
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (line.startsWith('```')) fence = !fence;
        const m = !fence && /^#{1,6} (.*)$/.exec(line);
        if (m) found.add(slug(m[1]));
      }
      anchors.set(file, found);
    }
    return anchors.get(file);
  };
  const broken = [];
  for (const page of pages) {
    const text = readFileSync(join(root, page), 'utf8');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const [target, anchor] = m[1].split('#');
      if (/^[a-z]+:/.test(target)) continue;
      const file = target ? resolve(root, dirname(page), target) : join(root, page);
      if (!existsSync(file)) broken.push(`${page}: link to ${m[1]}: no such file`);
      else if (anchor && file.endsWith('.md') && !anchorsOf(file).has(anchor)) broken.push(`${page}: link to ${m[1]}: no such heading`);
    }
  }
  return broken;
}

export function checkDocs() {
  const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  rmSync(out, { recursive: true, force: true });
  const origin = new Map();
  const fileMismatches = [];
  const files = [join(root, 'test', 'docs', 'doc-context.d.ts')];
  for (const page of pages) {
    const dir = join(out, page.replace(/[/.]/g, '_'));
    mkdirSync(dir, { recursive: true });
    extractBlocks(readFileSync(join(root, page), 'utf8')).forEach((block, n) => {
      if (block.file) {
        const actual = readFileSync(join(root, block.file), 'utf8').trim();
        if (actual !== block.code.trim()) fileMismatches.push(`${page}:${block.line}: differs from ${block.file}, which the block shows`);
        return;
      }
      const named = /^\/\/ ([\w.-]+\.ts)\s*$/.exec(block.code.split('\n')[0]);
      const file = join(dir, named ? named[1] : `block-${n + 1}.ts`);
      writeFileSync(file, block.code);
      origin.set(file, { page, line: block.line });
      files.push(file);
    });
  }
  const lib = (p) => [join(root, 'lib', p)];
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    moduleDetection: ts.ModuleDetectionKind.Force,
    lib: ['lib.es2023.d.ts'],
    types: ['node', 'jest'],
    typeRoots: [join(root, 'node_modules', '@types')],
    strict: true,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    useDefineForClassFields: false,
    esModuleInterop: true,
    skipLibCheck: true,
    noEmit: true,
    baseUrl: root,
    paths: {
      'nestjs-jetstream': lib('index.ts'),
      'nestjs-jetstream/transport': lib('transport/index.ts'),
      'nestjs-jetstream/testing': lib('testing/index.ts'),
      'nestjs-jetstream/health': lib('health/index.ts'),
    },
  });
  const problems = [...fileMismatches, ...brokenLinks(pages)];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    const where = d.file ? origin.get(resolve(d.file.fileName)) : undefined;
    if (d.file && !where && !resolve(d.file.fileName).startsWith(out)) {
      problems.push(`${relative(root, d.file.fileName)}: ${message}`);
      continue;
    }
    if (!where) {
      problems.push(message);
      continue;
    }
    const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
    problems.push(`${where.page}:${where.line + line}: ${message}`);
  }
  return { blocks: origin.size, problems };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { blocks, problems } = checkDocs();
  for (const p of problems) console.error(p);
  console.log(`docs: ${blocks} TypeScript blocks checked, ${problems.length} problem(s)`);
  process.exit(problems.length ? 1 : 0);
}
