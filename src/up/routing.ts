// Seed 004's "API" routing: given a URL and where the client is, which edge should serve it.
//
// Two wishes pull apart: the nearest edge (latency) and the edge that already has the object
// (cache affinity). The answer keeps both: edges are ranked for the URL by rendezvous hashing
// (highest random weight: every URL has its own stable order of edges, and losing an edge only
// moves the URLs it ranked first), and the first healthy edge in that order whose distance from the
// client is within `slack` of the nearest healthy edge serves. A client near several PoPs so
// spreads its URLs over them (each PoP caches its share); a client near one PoP uses that PoP.
import { hash32 } from '../balance/hash.ts';

export interface RouteEdge {
  readonly name: string;
  readonly region: string;
  readonly url: string;
  readonly healthy: boolean;
}

export interface RouteInput {
  readonly url: string;
  readonly clientRegion: string;
  readonly edges: readonly RouteEdge[];
  /** One-way latency in ms between a client region and an edge region. */
  readonly latencyMs: (clientRegion: string, edgeRegion: string) => number;
  /** An edge qualifies within max(nearest × (1 + slack.ratio), nearest + slack.ms). Default 0.5 and 10 ms. */
  readonly slack?: { readonly ratio: number; readonly ms: number };
}

export interface RouteAnswer {
  readonly edge: RouteEdge | undefined;
  readonly latencyMs: number | undefined;
  readonly reason: string;
  /** Every edge in the URL's order, with its distance and whether it qualified. */
  readonly ranking: ReadonlyArray<{ name: string; region: string; healthy: boolean; latencyMs: number; qualifies: boolean }>;
}

export function route(i: RouteInput): RouteAnswer {
  const slack = i.slack ?? { ratio: 0.5, ms: 10 };
  const ranked = i.edges
    .map((e) => ({ e, score: hash32(`${i.url}\u0000${e.name}`), latency: i.latencyMs(i.clientRegion, e.region) }))
    .sort((a, b) => b.score - a.score || (a.e.name < b.e.name ? -1 : 1));
  const healthy = ranked.filter((r) => r.e.healthy);
  if (healthy.length === 0) {
    return { edge: undefined, latencyMs: undefined, reason: 'no healthy edge', ranking: ranked.map((r) => ({ name: r.e.name, region: r.e.region, healthy: false, latencyMs: r.latency, qualifies: false })) };
  }
  const nearest = Math.min(...healthy.map((r) => r.latency));
  const limit = Math.max(nearest * (1 + slack.ratio), nearest + slack.ms);
  const pick = healthy.find((r) => r.latency <= limit)!;
  const first = ranked[0]!;
  const reason =
    pick === first
      ? 'first in the URL’s order and near enough'
      : !first.e.healthy
        ? `${first.e.name} (first in the URL’s order) is down`
        : `${first.e.name} (first in the URL’s order) is too far (${first.latency} ms > ${limit.toFixed(0)} ms)`;
  return {
    edge: pick.e,
    latencyMs: pick.latency,
    reason,
    ranking: ranked.map((r) => ({ name: r.e.name, region: r.e.region, healthy: r.e.healthy, latencyMs: r.latency, qualifies: r.e.healthy && r.latency <= limit })),
  };
}
