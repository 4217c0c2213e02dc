import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { which } from '../proc.ts';
import { escapeXml, niceStep, renderChart } from './chart.ts';
import { parseCli, runSuite, type CliOptions } from './cli.ts';
import { EXPERIMENTS, selectExperiments, type Experiment } from './experiments.ts';
import { DOC_BEGIN, DOC_END, findings, summarise, writeResults, type ExperimentSummary, type ExperimentsResult } from './report.ts';
import { figuresFrom, hotRequests, type RunRecord } from './runner.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'outpost-experiments-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Well-formed enough: every tag closed in order, no stray '<' or bare '&' in text; returns the tag names seen. */
function xmlTags(text: string): string[] {
  const body = text.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  const seen: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(body); m !== null; m = tag.exec(body)) {
    const between = body.slice(last, m.index);
    if (between.includes('<') || /&(?!(amp|lt|gt|quot|apos);)/.test(between)) throw new Error(`bad text before offset ${m.index}: ${between.slice(0, 80)}`);
    last = m.index + m[0].length;
    const [, closing, name = ''] = m;
    if (closing) {
      if (stack.pop() !== name) throw new Error(`</${name}> closes nothing open`);
    } else {
      seen.push(name);
      if (!m[4]) stack.push(name);
    }
  }
  if (body.slice(last).trim() !== '') throw new Error('text after the root element');
  if (stack.length > 0) throw new Error(`unclosed: ${stack.join(', ')}`);
  return seen;
}

async function tinyOptions(only: string, driver: 'node' | 'wrk', outDir: string): Promise<CliOptions> {
  const o = await parseCli(['--only', only, '--duration', '1s', '--reps', '1', '--connections', '2', '--threads', '1', '--driver', driver, '--out', outDir, '--max-other-cpu', '100']);
  if (o === 'help') throw new Error('unexpected help');
  return o;
}

async function endToEnd(only: string, driver: 'node' | 'wrk'): Promise<void> {
  const out = join(tmp, `${only}-${driver}`);
  const lines: string[] = [];
  const o = await tinyOptions(only, driver, out);
  const suite = await runSuite(o, { done: (_i, _n, e, r) => lines.push(`${e.id} ${r.requests}`) });
  const e = EXPERIMENTS.find((x) => x.id === only) as Experiment;

  // A table row for the experiment, with every column filled.
  const row = suite.tables.split('\n').find((l) => l.startsWith(`| ${e.label} |`));
  expect(row, suite.tables).toBeDefined();
  expect(row?.split('|').length).toBe(13);
  expect(lines).toEqual([expect.stringMatching(new RegExp(`^${only} \\d+$`))]);

  // The JSON holds the run, and its figures agree with each other.
  const json = JSON.parse(readFileSync(suite.files?.json ?? '', 'utf8')) as ExperimentsResult;
  expect(json.records).toHaveLength(1);
  const r = json.records[0]!;
  expect(r.error).toBeUndefined();
  expect(r.requests).toBeGreaterThan(0);
  expect(Object.keys(r.edges)).toEqual(['edge-us-east', 'edge-eu-west', 'edge-ap-south']);
  const answered = Object.values(r.edges).reduce((s, x) => s + x.requests, 0);
  expect(answered).toBe(Object.values(r.counts).reduce((s, x) => s + x, 0));
  expect(answered).toBeGreaterThan(0);
  // Cold caches: the first request for anything reaches the origin.
  expect(r.originRequests).toBeGreaterThan(0);
  expect(r.hitRatioPct).toBeGreaterThanOrEqual(0);
  expect(r.hitRatioPct).toBeLessThanOrEqual(100);
  expect(json.summaries[0]?.experiment.id).toBe(only);
  expect(json.findings.length).toBeGreaterThan(0);

  // The chart is an SVG document with bars in it.
  const svg = readFileSync(suite.files?.svg ?? '', 'utf8');
  const tags = xmlTags(svg);
  expect(tags[0]).toBe('svg');
  expect(svg).toMatch(/<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  expect(svg.match(/<rect class="bar"/g)?.length ?? 0).toBeGreaterThan(0);
}

describe('outpost bench experiments, in a tiny form', () => {
  it('runs one experiment end to end with the node driver: table, JSON and SVG chart', async () => {
    await endToEnd('policy-bounded', 'node');
  }, 20_000);

  it.skipIf(process.platform !== 'linux')('runs one experiment end to end with wrk when wrk is installed', async (ctx) => {
    if ((await which('wrk')) === undefined) ctx.skip();
    await endToEnd('ttl-1s', 'wrk');
  }, 20_000);

  it('replaces only the results section of the doc', async () => {
    const json = readdirJson(join(tmp, 'policy-bounded-node'));
    const result = JSON.parse(readFileSync(json, 'utf8')) as ExperimentsResult;
    const doc = join(tmp, 'doc.md');
    writeFileSync(doc, `# Title\n\nintro\n\n${DOC_BEGIN}\nold figures\n${DOC_END}\n\noutro\n`);
    writeResults(result, join(tmp, 'doc-results'), doc);
    const text = readFileSync(doc, 'utf8');
    expect(text).not.toContain('old figures');
    expect(text).toMatch(/^# Title\n\nintro\n\n<!-- experiments:results:begin -->/);
    expect(text).toMatch(/<!-- experiments:results:end -->\n\noutro\n$/);
    expect(text).toContain('| bounded |');
    expect(text).toMatch(/!\[[^\]]*\]\(doc-results\/experiments-[\dTZ-]+\.svg\)/);
  });
});

function readdirJson(dir: string): string {
  const file = readdirSync(dir).find((f) => f.endsWith('.json'));
  if (file === undefined) throw new Error(`no JSON in ${dir}`);
  return join(dir, file);
}

describe('experiment figures', () => {
  it('counts hits per edge and overall from X-Served-By and X-Cache-Status', () => {
    const f = figuresFrom({ 'edge-a|HIT|ok': 90, 'edge-a|MISS|ok': 10, 'edge-b|UPDATING|ok': 30, 'edge-b|EXPIRED|ok': 10, 'edge-b|MISS|bad': 10 }, ['edge-a', 'edge-b', 'edge-c']);
    expect(f.edges['edge-a']).toEqual({ requests: 100, hits: 90, hitRatioPct: 90 });
    expect(f.edges['edge-b']).toEqual({ requests: 50, hits: 30, hitRatioPct: 60 });
    expect(f.edges['edge-c']).toEqual({ requests: 0, hits: 0, hitRatioPct: 0 });
    expect(f.hitRatioPct).toBe(80);
    expect(f.non2xx).toBe(10);
    // 100 requests on the busiest edge, 50 on average.
    expect(f.edgeMaxOverAvg).toBe(2);
  });

  it('counts origin requests for the hot items between two snapshots of the origin', () => {
    const before = { '/path/item-1.ext?max_age=1': 2, '/path/item-7.ext?max_age=1': 1 };
    const after = { '/path/item-1.ext?max_age=1': 5, '/path/item-5.ext?max_age=1': 1, '/path/item-6.ext?max_age=1': 4, '/path/item-7.ext?max_age=1': 3, '/health': 9 };
    expect(hotRequests(before, after, 5)).toBe(4);
    expect(hotRequests(before, after, 1)).toBe(3);
  });

  it('summarises the runs kept: medians with min–max, discarded and failed runs left out', () => {
    const run = (rps: number, extra: Partial<RunRecord> = {}): RunRecord => ({
      experiment: 'ttl-1s', rep: 1, attempt: 1, discarded: false, requests: rps, durationS: 1, rps, p50Ms: 1, p90Ms: 2, p99Ms: 3, maxMs: 4,
      errors: 0, non2xx: 0, socketErrors: 0, hitRatioPct: 90, edgeMaxOverAvg: 1, originRequests: 10, originHotRequests: 1, otherCpuPct: 0,
      edges: { 'edge-a': { requests: rps, hits: rps, hitRatioPct: 90 } }, counts: {}, ...extra,
    });
    const [s] = summarise(EXPERIMENTS, [run(100), run(1_000_000, { discarded: true }), run(300), run(200), run(NaN, { error: 'boom' })]);
    expect(s?.rps).toEqual({ median: 200, min: 100, max: 300 });
    expect(s?.edges['edge-a']?.requests).toBe(200);
    expect([s?.runs, s?.failed, s?.errorsSeen]).toEqual([3, 1, ['boom']]);
  });

  it('checks the seed findings against the figures, either way', () => {
    const s = (id: string, hit: number, rps: number, maxOverAvg = 1): ExperimentSummary => ({
      experiment: EXPERIMENTS.find((e) => e.id === id) as Experiment,
      runs: 1,
      failed: 0,
      rps: { median: rps, min: rps, max: rps },
      p50Ms: 1,
      p90Ms: 2,
      p99Ms: 3,
      errors: 0,
      hitRatioPct: { median: hit, min: hit, max: hit },
      originRequests: 10,
      originHotRequests: 5,
      edgeMaxOverAvg: maxOverAvg,
      otherCpuPct: 0,
      edges: {},
      errorsSeen: [],
    });
    const verdicts = (list: ExperimentSummary[]): string[] => findings(list).map((f) => f.verdict);
    expect(verdicts([s('ttl-1s', 50, 100), s('ttl-10s', 60, 200), s('ttl-60s', 70, 300), s('policy-rr', 60, 1, 1), s('policy-chash', 80, 1, 2), s('policy-bounded', 75, 1, 1.3), s('collapsing-on', 90, 100), s('collapsing-off', 90, 105)])).toEqual([
      'holds',
      'holds',
      'holds',
      'holds',
    ]);
    expect(verdicts([s('ttl-1s', 50, 300), s('ttl-60s', 70, 100), s('policy-rr', 80, 1, 1), s('policy-chash', 60, 1, 1.2), s('policy-bounded', 75, 1, 1.5), s('collapsing-on', 90, 200), s('collapsing-off', 90, 100)])).toEqual([
      'partly holds',
      'does not hold',
      'does not hold',
      'does not hold',
    ]);
    expect(verdicts([])).toEqual(['not measured', 'not measured', 'not measured', 'not measured']);
  });
});

describe('experiment selection and options', () => {
  it('selects by id or group and names the choices for an unknown one', async () => {
    expect(selectExperiments(['ttl']).map((e) => e.id)).toEqual(['ttl-1s', 'ttl-10s', 'ttl-60s']);
    expect(selectExperiments(['policy-rr', 'collapsing']).map((e) => e.id)).toEqual(['collapsing-on', 'collapsing-off', 'policy-rr']);
    expect(() => selectExperiments(['nope'])).toThrow(/no experiment matches "nope"; experiments: ttl-1s/);
    await expect(parseCli(['--duration', '500ms'])).rejects.toThrow(/--duration: expected a duration of at least 1s/);
    await expect(parseCli(['--driver', 'ab'])).rejects.toThrow(/--driver: expected wrk or node/);
    const quick = await parseCli(['--quick', '--driver', 'node']);
    expect(quick !== 'help' && [quick.durationS, quick.reps, quick.connections]).toEqual([5, 1, 10]);
  });

  it('is reachable as `outpost bench experiments` and rejects an unknown experiment', async () => {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(join(root, 'bin/outpost'), ['bench', 'experiments', '--only', 'nope'], { cwd: root, timeout: 15_000 }, (err, _out, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr });
      });
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no experiment matches "nope"/);
  }, 15_000);
});

describe('SVG bar chart', () => {
  it('draws one bar per value, escapes labels and picks round axis steps', () => {
    const svg = renderChart('A & B <test>', 'sub', [
      { title: 'hits "quoted"', unit: '%', yMax: 100, series: ['x', 'y'], groups: [{ label: '<1 s>', values: [50, 75] }, { label: 'b', values: [undefined, 10] }] },
    ]);
    expect(xmlTags(svg)[0]).toBe('svg');
    expect(svg.match(/<rect class="bar"/g)).toHaveLength(3);
    expect(svg).toContain('A &amp; B &lt;test&gt;');
    expect(escapeXml('"<&>')).toBe('&quot;&lt;&amp;&gt;');
    expect([niceStep(100), niceStep(1786), niceStep(9), niceStep(0)]).toEqual([25, 500, 2.5, 1]);
  });
});
