// What the machine is, which tools are on it, and how busy everything else on it is.
// CPU accounting reads /proc directly so that the bench can tell its own work from the noise of a
// shared machine and discard runs that others disturbed.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem, hostname } from 'node:os';
import { runCommand, which } from './proc.ts';

export interface MachineInfo {
  readonly hostname: string;
  readonly kernel: string;
  readonly cpuModel: string;
  readonly cpuCount: number;
  readonly memoryGiB: number;
  readonly os: string;
}

export function machineInfo(): MachineInfo {
  let os = 'unknown';
  try {
    os = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os;
  } catch {
    // not Linux
  }
  return {
    hostname: hostname(),
    kernel: release(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cpuCount: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os,
  };
}

export type Tool = 'nginx' | 'varnishd' | 'wrk' | 'h2load';
export type ToolPaths = Partial<Record<Tool, string>>;

const TOOLS: readonly Tool[] = ['nginx', 'varnishd', 'wrk', 'h2load'];
const DEBIAN_PACKAGES: Record<Tool, string> = { nginx: 'nginx', varnishd: 'varnish', wrk: 'wrk', h2load: 'nghttp2-client' };

export async function findTools(): Promise<ToolPaths> {
  const found: ToolPaths = {};
  for (const t of TOOLS) {
    const p = await which(t);
    if (p !== undefined) found[t] = p;
  }
  return found;
}

/**
 * Installs the missing tools from Debian. Never fatal: what cannot be installed is reported and the
 * bench measures without it. Service start-up by the packages' scripts is refused so that no system
 * nginx or Varnish is left listening on the default ports.
 */
export async function installMissing(found: ToolPaths, say: (line: string) => void): Promise<ToolPaths> {
  const missing = TOOLS.filter((t) => found[t] === undefined);
  if (missing.length === 0) return found;
  const pkgs = missing.map((t) => DEBIAN_PACKAGES[t]);
  if (!existsSync('/usr/bin/apt-get')) {
    say(`missing ${missing.join(', ')} and apt-get is not available: measuring without them`);
    return found;
  }
  say(`installing from Debian: ${pkgs.join(' ')} (apt-get update + install, up to 5 minutes)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', RUNLEVEL: '1' };
  const update = await runCommand('apt-get', ['update', '-qq'], { timeoutMs: 180_000, env });
  if (update.code !== 0) say(`apt-get update failed: ${update.stderr.trim().split('\n').slice(-1)[0] ?? ''}`);
  const install = await runCommand('apt-get', ['install', '-y', '-qq', ...pkgs], { timeoutMs: 300_000, env });
  if (install.code !== 0) say(`apt-get install failed: ${install.stderr.trim().split('\n').slice(-1)[0] ?? ''}`);
  const after = await findTools();
  for (const t of missing) say(after[t] === undefined ? `${t}: not available, skipping what needs it` : `${t}: installed`);
  return after;
}

export type Versions = Record<string, string>;

export async function toolVersions(tools: ToolPaths, nodePath: string): Promise<Versions> {
  const first = async (cmd: string, args: string[], pattern: RegExp): Promise<string> => {
    const r = await runCommand(cmd, args, { timeoutMs: 5_000 });
    return pattern.exec(r.stdout + r.stderr)?.[1] ?? 'unknown';
  };
  const v: Versions = { node: await first(nodePath, ['--version'], /v?(\S+)/) };
  if (tools.nginx) v['nginx'] = await first(tools.nginx, ['-v'], /nginx\/(\S+)/);
  if (tools.varnishd) v['varnish'] = await first(tools.varnishd, ['-V'], /varnish-(\S+)/);
  if (tools.wrk) v['wrk'] = await first(tools.wrk, ['-v'], /wrk (\S+)/);
  if (tools.h2load) v['h2load'] = await first(tools.h2load, ['--version'], /nghttp2\/(\S+)/);
  return v;
}

// ---- /proc accounting -------------------------------------------------------------------------

interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks: includes children it has reaped. */
  readonly ticks: number;
  readonly rssPages: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses; fields after the last ')' are fixed.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const n = (i: number): number => Number(rest[i] ?? 0);
  // rest[0] is field 3 (state): field k is rest[k - 3].
  return { pid, ppid: n(1), ticks: n(11) + n(12) + n(13) + n(14), rssPages: n(21) };
}

function allStats(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) out.push(s);
  }
  return out;
}

/** Every process below (and including) root, from the ppid links in /proc. */
function treeOf(stats: readonly ProcStat[], root: number): ProcStat[] {
  const kids = new Map<number, ProcStat[]>();
  for (const s of stats) {
    const list = kids.get(s.ppid);
    if (list) list.push(s);
    else kids.set(s.ppid, [s]);
  }
  const self = stats.find((s) => s.pid === root);
  if (!self) return [];
  const out: ProcStat[] = [];
  const queue = [self];
  for (let i = 0; i < queue.length && i < 100_000; i++) {
    const s = queue[i];
    if (!s) break;
    out.push(s);
    queue.push(...(kids.get(s.pid) ?? []));
  }
  return out;
}

function machineTicks(): { busy: number; total: number; cpus: number } {
  const lines = readFileSync('/proc/stat', 'utf8').split('\n');
  const f = (lines[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  // Interrupt ticks that land while a process runs are charged to that process's stime as well, so
  // they belong in "busy" or the bench's own loopback traffic would hide other processes' work.
  const cpus = lines.filter((l) => /^cpu\d/.test(l)).length;
  return { busy: user + nice + system + irq + softirq, total: user + nice + system + idle + iowait + irq + softirq + steal, cpus };
}

export interface CpuSnapshot {
  readonly at: number;
  readonly machine: { busy: number; total: number; cpus: number };
  readonly ours: number;
  readonly server: number;
}

/** A point-in-time reading; two of them give the CPU shares of a run. */
export function cpuSnapshot(serverPids: readonly number[]): CpuSnapshot {
  const stats = allStats();
  const sum = (list: readonly ProcStat[]): number => list.reduce((a, s) => a + s.ticks, 0);
  const ours = sum(treeOf(stats, process.pid));
  let server = 0;
  for (const pid of serverPids) server += sum(treeOf(stats, pid));
  return { at: Date.now(), machine: machineTicks(), ours, server };
}

export interface CpuShares {
  /** Share of the whole machine (all cores) used by processes that are not the bench's, in %. */
  readonly otherPct: number;
  /** CPU of the measured server's processes, in % of one core. */
  readonly serverPct: number;
  /** CPU of the bench and its load generators (everything ours but the server), in % of one core. */
  readonly loadPct: number;
}

export function cpuShares(a: CpuSnapshot, b: CpuSnapshot): CpuShares {
  const total = Math.max(1, b.machine.total - a.machine.total);
  const busy = b.machine.busy - a.machine.busy;
  const ours = b.ours - a.ours;
  const server = b.server - a.server;
  // Not availableParallelism(): the bench pins itself to one CPU in the 1-worker phase.
  const ncpu = Math.max(1, b.machine.cpus);
  const pct = (x: number): number => Math.round(x * 10) / 10;
  return {
    otherPct: pct(Math.max(0, ((busy - ours) / total) * 100)),
    serverPct: pct((server / total) * ncpu * 100),
    loadPct: pct(((ours - server) / total) * ncpu * 100),
  };
}

export interface ProcMemory {
  readonly pid: number;
  readonly role: string;
  readonly rssMiB: number;
  /**
   * Proportional set size: pages shared with other processes (the node binary's file-backed pages,
   * shared libraries, fork-shared pages) counted as a fraction. Sums of PSS do not double-count what
   * sums of RSS do. NaN where smaps_rollup cannot be read.
   */
  readonly pssMiB: number;
}

const toMiB = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;

/** PSS in bytes from /proc/PID/smaps_rollup (Linux ≥ 4.14), NaN when unreadable. */
export function pssBytes(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m?.[1] === undefined ? Number.NaN : Number(m[1]) * 1024;
  } catch {
    return Number.NaN;
  }
}

/** RSS and PSS of every process of a server, labelled from its command line (nginx and Varnish name theirs). */
export function treeMemory(root: number): ProcMemory[] {
  const page = 4096;
  return treeOf(allStats(), root)
    .filter((s) => !isWrapper(s.pid))
    .map((s) => ({ pid: s.pid, role: roleOf(s.pid, root), rssMiB: toMiB(s.rssPages * page), pssMiB: toMiB(pssBytes(s.pid)) }));
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

function isWrapper(pid: number): boolean {
  return /^(taskset|prlimit|sh) /.test(cmdline(pid));
}

function roleOf(pid: number, root: number): string {
  const cmd = cmdline(pid);
  const nginx = /^nginx: (\S+(?: \S+)?) process/.exec(cmd);
  if (nginx?.[1]) return nginx[1];
  if (cmd.includes('varnishd')) return pid === root ? 'manager' : 'child';
  return pid === root ? 'main' : 'worker';
}

/** Soft and hard open-files limits of this process (children inherit them). */
export function openFilesLimit(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const n = (x: string | undefined): number => (x === 'unlimited' ? 1_048_576 : Number(x ?? 1024));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

/**
 * Raises this process's open-files limit in place with prlimit (servers started later inherit it):
 * to `want` if allowed, else the soft limit up to the hard one. Returns the soft limit in force.
 */
export async function ensureOpenFiles(want: number): Promise<number> {
  if (openFilesLimit().soft >= want) return openFilesLimit().soft;
  await runCommand('prlimit', ['--pid', String(process.pid), `--nofile=${want}:${want}`], { timeoutMs: 5_000 });
  const now = openFilesLimit();
  if (now.soft >= want) return now.soft;
  await runCommand('prlimit', ['--pid', String(process.pid), `--nofile=${now.hard}:${now.hard}`], { timeoutMs: 5_000 });
  return openFilesLimit().soft;
}

/** The pids of a process and all its descendants. */
export function treePids(root: number): number[] {
  return treeOf(allStats(), root).map((s) => s.pid);
}
