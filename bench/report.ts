import { execSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { spreadOf } from './support.js';

/**
 * One line of the results table. Figures are numbers in `unit`; the ratios are module/raw-tuned,
 * module/raw and module/peer when higher is better (throughput), and written as a difference where a ratio
 * means nothing (latency, memory growth).
 */
export interface ResultRow {
  readonly workload: string;
  readonly unit: string;
  /** The tuned client (`bench/contenders/raw-tuned.ts`): the floor the targets are set against. */
  readonly tuned?: number;
  readonly raw?: number;
  readonly module?: number;
  readonly peer?: number;
  /** module/raw-tuned: what the targets read. */
  readonly vsTuned?: string;
  readonly vsRaw?: string;
  readonly vsPeer?: string;
  readonly target?: string;
  /** Undefined when the row has no target (or a contender it needs did not run). */
  readonly met?: boolean;
  readonly note?: string;
}

const rows: ResultRow[] = [];
const notes: string[] = [];

export function addRow(row: ResultRow): void {
  rows.push(row);
}

/** A footnote under the table (what a contender supports, why a cell is empty). */
export function addNote(note: string): void {
  if (!notes.includes(note)) notes.push(note);
}

/** `a / b` as `1.23x`, or undefined when either side is missing. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

/** A difference with its sign, e.g. `+0.42 ms`, `-28.0 MB`. */
export function signed(v: number, unit: 'ms' | 'MB'): string {
  return `${v >= 0 ? '+' : ''}${v.toFixed(unit === 'MB' ? 1 : 2)} ${unit}`;
}

export const times = (r: number | undefined): string | undefined => (r === undefined ? undefined : `${r.toFixed(2)}x`);

function figure(v: number | undefined, unit: string): string {
  if (v === undefined) return '-';
  const spread = spreadOf(v);
  if (unit.endsWith('/s')) {
    const k = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(1)}k` : Math.round(x).toString());
    return `${Math.round(v).toLocaleString('en')}${spread ? ` (${k(spread[0])}-${k(spread[1])})` : ''}`;
  }
  const digits = unit === 'MB' ? 1 : 2;
  return `${v.toFixed(digits)}${spread ? ` (${spread[0].toFixed(digits)}-${spread[1].toFixed(digits)})` : ''}`;
}

export interface Environment {
  readonly natsServer: string;
  readonly node: string;
  readonly cpu: string;
  readonly memoryGiB: number;
  readonly rounds: number;
  /** 1-minute load average when the run ended: how busy the machine was. */
  readonly load: string;
  readonly git: string;
  readonly date: string;
}

export function environment(natsServer: string, rounds: number): Environment {
  return {
    natsServer,
    node: process.version,
    cpu: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}`,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    rounds,
    load: loadavg()[0].toFixed(2),
    git: safeGit(),
    date: new Date().toISOString(),
  };
}

/** The table as markdown: what the console shows and what `.cache/bench/results.md` holds. */
export function renderTable(env: Environment): string {
  const head = ['workload', 'raw-tuned', 'raw', 'module', 'peer', 'module/raw-tuned', 'module/raw', 'module/peer', 'target', 'met?'];
  const cells = rows.map((r) => [
    `${r.workload} (${r.unit})`,
    figure(r.tuned, r.unit),
    figure(r.raw, r.unit),
    figure(r.module, r.unit),
    figure(r.peer, r.unit),
    r.vsTuned ?? '-',
    r.vsRaw ?? '-',
    r.vsPeer ?? '-',
    r.target ?? '',
    r.met === undefined ? '' : r.met ? 'yes' : 'NO',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => `| ${c.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
  const out = [
    `nats-server ${env.natsServer}, node ${env.node}, ${env.cpu}, ${env.memoryGiB} GiB, ${env.rounds} rounds after a warm-up (median, min-max), load average ${env.load}, git ${env.git}, ${env.date}`,
    '',
    line(head),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...cells.map(line),
  ];
  const footnotes = [...notes, ...rows.filter((r) => r.note).map((r) => `${r.workload}: ${r.note}`)];
  if (footnotes.length) out.push('', ...footnotes.map((n) => `- ${n}`));
  return out.join('\n');
}

/** Prints the table and writes it (markdown and JSON) under `.cache/bench/`. */
export function publish(env: Environment, dir = '.cache/bench'): void {
  const table = renderTable(env);
  console.log(`\n${table}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'results.md'), `${table}\n`);
  writeFileSync(join(dir, 'results.json'), `${JSON.stringify({ environment: env, rows, notes }, null, 2)}\n`);
  process.stderr.write(`\nwritten to ${join(dir, 'results.md')} and results.json\n`);
  const page = process.env.BENCH_WRITE;
  if (page) writeIntoPage(page, table);
}

const BEGIN = '<!-- bench:begin -->';
const END = '<!-- bench:end -->';

/**
 * `BENCH_WRITE=docs/performance.md`: the table replaces the one between the page's markers, so
 * the published figures are this run's output, never a hand copy. A partial run (BENCH_ONLY)
 * would drop rows, so it is refused.
 */
function writeIntoPage(page: string, table: string): void {
  if (process.env.BENCH_ONLY) throw new Error('BENCH_WRITE needs a full run: unset BENCH_ONLY');
  const text = readFileSync(page, 'utf8');
  const begin = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`${page} has no ${BEGIN} ... ${END} block`);
  writeFileSync(page, `${text.slice(0, begin + BEGIN.length)}\n${table}\n${text.slice(end)}`);
  process.stderr.write(`table written into ${page}\n`);
}

function safeGit(): string {
  try {
    return execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}
