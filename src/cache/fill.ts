// Streaming an origin body to the client while it is written to the cache tiers. The fill goes on
// when the client goes away, so the requests collapsed behind it still get the object.
import { PassThrough, Transform, type Readable } from 'node:stream';
import type { StoredMeta, WriteHandle } from './storage/tier.ts';

export interface FillResult {
  /** True when at least one tier committed the object. */
  readonly stored: boolean;
  readonly bytes: number;
  readonly error?: Error;
}

function waitDrain(out: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}

/** Bytes the slower tiers may fall behind the fastest one before the fill waits for them. */
const SLOWER_TIERS_HIGH_WATER = 1024 * 1024;

/**
 * Copies `source` into every writer and, when `client` is given, into it. Resolves when every
 * writer has committed (or the body failed); `makeMeta(size)` supplies the metadata to commit.
 * The first writer is the fastest tier (RAM): the fill keeps pace with it, and once it has
 * committed, `onFirstCommitted` runs and the client's stream ends. The slower tiers (the disk,
 * whose writes go through libuv's thread pool and whose commit syncs to disk) follow behind, up
 * to SLOWER_TIERS_HIGH_WATER bytes; one of them failing after the first committed only loses its copy.
 */
export async function fillFromOrigin(
  source: Readable,
  writers: readonly WriteHandle[],
  client: PassThrough | null,
  makeMeta: (size: number) => StoredMeta,
  onFirstCommitted?: () => void,
): Promise<FillResult> {
  let bytes = 0;
  const [first, ...slower] = writers;
  let behind: Array<Promise<void>> = [];
  let behindBytes = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (slower.length > 0) {
        for (const w of slower) behind.push(w.write(chunk));
        behindBytes += chunk.length;
        if (behindBytes > SLOWER_TIERS_HIGH_WATER) {
          await Promise.all(behind);
          behind = [];
          behindBytes = 0;
        }
      }
      if (first) await first.write(chunk);
      if (client && !client.destroyed && !client.write(chunk)) await waitDrain(client);
    }
  } catch (err) {
    await Promise.allSettled(behind);
    await Promise.all(writers.map((w) => w.abort()));
    client?.destroy(err as Error);
    return { stored: false, bytes, error: err as Error };
  }
  const meta = makeMeta(bytes);
  const caughtUp = Promise.all(behind);
  const commits = writers.map((w, i) =>
    i === 0
      ? w.commit(meta).catch(() => false)
      : caughtUp.then(
          () => w.commit(meta).catch(() => false),
          async () => {
            await w.abort();
            return false;
          },
        ),
  );
  if (commits.length > 0 && (await commits[0])) onFirstCommitted?.();
  client?.end();
  const committed = await Promise.all(commits);
  return { stored: committed.some(Boolean), bytes };
}

/** Passes through only bytes [start, end] (inclusive) of a stream. */
export function sliceStream(start: number, end: number): Transform {
  let offset = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const from = Math.max(start - offset, 0);
      const to = Math.min(end + 1 - offset, chunk.length);
      offset += chunk.length;
      if (to > from) this.push(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
      cb();
    },
  });
}
