// Reads a V8 .cpuprofile (node --cpu-prof) and sums time by function: self time (where the CPU was)
// and inclusive time (what a call and everything below it cost), plus a split by where the code lives.
// `node bench/profile-summary.ts FILE.cpuprofile [--top N]` prints it; bench/profile.ts calls it.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface FunctionTime {
  readonly name: string;
  /** Where the function lives: a project path, `node:…`, a package name, or empty for V8/native. */
  readonly where: string;
  readonly selfMs: number;
  readonly totalMs: number;
}

export interface ProfileSummary {
  /** Sampled time when the thread was not idle, in ms. */
  readonly busyMs: number;
  readonly idleMs: number;
  readonly functions: readonly FunctionTime[];
  /** Self time by area: project source, node internals, each package, GC, native/program. */
  readonly areas: ReadonlyArray<{ readonly area: string; readonly selfMs: number }>;
}

function where(url: string, root: string): string {
  if (url === '') return '';
  if (url.startsWith('node:')) return url;
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + 14).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? path);
  }
  return path.startsWith(root) ? path.slice(root.length) : path;
}

function areaOf(fn: { name: string; where: string }): string {
  if (fn.name === '(garbage collector)') return 'GC';
  if (fn.name === '(program)' || fn.where === '') return 'native / V8 / libuv (no JS frame)';
  if (fn.where.startsWith('node:')) return 'node internals (http, net, streams)';
  if (fn.where.startsWith('src/')) return `src/${fn.where.split('/')[1] ?? ''}`;
  return fn.where.includes('/') ? 'other' : `package ${fn.where}`;
}

export function summariseProfile(p: CpuProfile, root: string): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const keyOf = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'}\u0000${where(n.callFrame.url, root)}:${n.callFrame.lineNumber + 1}`;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let idleUs = 0;
  let busyUs = 0;
  // timeDeltas[i] is the time since the previous sample; attribute it to sample i.
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    const node = byId.get(p.samples[i] ?? -1);
    if (!node) continue;
    if (node.callFrame.functionName === '(idle)') {
      idleUs += dt;
      continue;
    }
    busyUs += dt;
    const k = keyOf(node);
    self.set(k, (self.get(k) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id, depth = 0; id !== undefined && depth < 1_000; id = parent.get(id), depth++) {
      const n = byId.get(id);
      if (!n) break;
      const kk = keyOf(n);
      if (seen.has(kk)) continue;
      seen.add(kk);
      total.set(kk, (total.get(kk) ?? 0) + dt);
    }
  }
  const functions: FunctionTime[] = [...total.entries()]
    .map(([k, t]) => {
      const [name = '', loc = ''] = k.split('\u0000');
      return { name, where: loc.replace(/:\d+$/, '') === '' ? '' : loc, selfMs: (self.get(k) ?? 0) / 1e3, totalMs: t / 1e3 };
    })
    .filter((f) => f.name !== '(root)');
  const areas = new Map<string, number>();
  for (const f of functions) {
    const a = areaOf({ name: f.name, where: f.where.replace(/:\d+$/, '') });
    areas.set(a, (areas.get(a) ?? 0) + f.selfMs);
  }
  return {
    busyMs: busyUs / 1e3,
    idleMs: idleUs / 1e3,
    functions,
    areas: [...areas.entries()].map(([area, selfMs]) => ({ area, selfMs })).sort((a, b) => b.selfMs - a.selfMs),
  };
}

export function formatSummary(s: ProfileSummary, top: number): string {
  const pct = (ms: number): string => `${((ms / Math.max(1, s.busyMs)) * 100).toFixed(1).padStart(5)} %`;
  const label = (f: FunctionTime): string => `${f.name}${f.where ? `  ${f.where}` : ''}`;
  const lines = [`busy ${s.busyMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms (percentages are of busy time)`, '', 'self time by area:'];
  for (const a of s.areas) lines.push(`  ${pct(a.selfMs)}  ${a.area}`);
  lines.push('', `top ${top} functions by self time:`);
  for (const f of [...s.functions].sort((a, b) => b.selfMs - a.selfMs).slice(0, top)) lines.push(`  ${pct(f.selfMs)}  ${label(f)}`);
  lines.push('', `top ${top} project functions by inclusive time:`);
  const own = s.functions.filter((f) => f.where.startsWith('src/'));
  for (const f of [...own].sort((a, b) => b.totalMs - a.totalMs).slice(0, top)) lines.push(`  ${pct(f.totalMs)}  ${label(f)}`);
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '30' } }, allowPositionals: true });
  const root = fileURLToPath(new URL('..', import.meta.url));
  for (const file of positionals) {
    console.log(`== ${file}`);
    console.log(formatSummary(summariseProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, root), Number(values.top)));
  }
}
