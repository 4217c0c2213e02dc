import { describe, expect, it } from 'vitest';
import { route, type RouteEdge } from './routing.ts';

const edges = (down: string[] = []): RouteEdge[] =>
  ['us-east', 'eu-west', 'ap-south'].map((r) => ({ name: `edge-${r}`, region: r, url: `http://${r}`, healthy: !down.includes(`edge-${r}`) }));

// Client in eu-west: eu-west 5 ms, us-east 40 ms, ap-south 70 ms. Client "atlantic": two near PoPs.
const matrix: Record<string, Record<string, number>> = {
  'eu-west': { 'eu-west': 5, 'us-east': 40, 'ap-south': 70 },
  atlantic: { 'eu-west': 20, 'us-east': 22, 'ap-south': 90 },
};
const latencyMs = (c: string, e: string) => matrix[c]![e]!;
const urls = Array.from({ length: 1000 }, (_, i) => `http://cdn.test/item/${i}`);

describe('routing API', () => {
  it('sends a client near one PoP to that PoP whatever the URL', () => {
    for (const url of urls.slice(0, 100)) expect(route({ url, clientRegion: 'eu-west', edges: edges(), latencyMs }).edge?.name).toBe('edge-eu-west');
  });

  it('spreads the URLs of a client near two PoPs over both, each URL always to the same one', () => {
    const counts = new Map<string, number>();
    for (const url of urls) {
      const a = route({ url, clientRegion: 'atlantic', edges: edges(), latencyMs }).edge!.name;
      expect(route({ url, clientRegion: 'atlantic', edges: edges(), latencyMs }).edge!.name).toBe(a);
      counts.set(a, (counts.get(a) ?? 0) + 1);
    }
    expect(counts.get('edge-ap-south')).toBeUndefined();
    expect(counts.get('edge-eu-west')!).toBeGreaterThan(250);
    expect(counts.get('edge-us-east')!).toBeGreaterThan(250);
  });

  it('moves only the URLs of an edge that goes down, to the next near edge', () => {
    let moved = 0;
    for (const url of urls) {
      const before = route({ url, clientRegion: 'atlantic', edges: edges(), latencyMs }).edge!.name;
      const after = route({ url, clientRegion: 'atlantic', edges: edges(['edge-us-east']), latencyMs });
      if (before !== 'edge-us-east') expect(after.edge!.name).toBe(before);
      else {
        moved++;
        expect(after.edge!.name).toBe('edge-eu-west');
      }
    }
    expect(moved).toBeGreaterThan(0);
  });

  it('falls back to a far edge when the near ones are down, and says when none is healthy', () => {
    const far = route({ url: urls[0]!, clientRegion: 'eu-west', edges: edges(['edge-eu-west', 'edge-us-east']), latencyMs });
    expect(far.edge?.name).toBe('edge-ap-south');
    expect(far.latencyMs).toBe(70);
    const none = route({ url: urls[0]!, clientRegion: 'eu-west', edges: edges(['edge-eu-west', 'edge-us-east', 'edge-ap-south']), latencyMs });
    expect(none.edge).toBeUndefined();
    expect(none.reason).toBe('no healthy edge');
  });
});
