// A small client for the admin API, used by the CLI.
import { request } from 'undici';
import { OutpostError } from '../errors.ts';
import type { PrefetchResult } from './prefetch.ts';

export class AdminClient {
  private readonly base: string;
  private readonly key: string | undefined;

  constructor(base: string, key?: string) {
    this.base = base.replace(/\/$/, '');
    this.key = key;
  }

  private post<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  /** One admin API call; errors carry the API's code and message (with line/column for CU code). */
  async call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
    let res;
    try {
      res = await request(this.base + path, {
        method,
        headers: { 'content-type': 'application/json', ...(this.key ? { authorization: `Bearer ${this.key}` } : {}) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      throw new OutpostError('UPSTREAM_CONNECT', `cannot reach the admin API at ${this.base}: ${(err as Error).message}`);
    }
    const text = await res.body.text();
    if (res.statusCode >= 400) {
      let detail = text.trim();
      try {
        const j = JSON.parse(text) as { error?: string; message?: string };
        detail = `${j.error ?? ''}: ${j.message ?? ''}`;
        if (j.error === 'CU_INVALID' || j.error === 'CU_NOT_FOUND') throw new OutpostError(j.error, j.message ?? detail);
      } catch (err) {
        if (err instanceof OutpostError) throw err;
        // not JSON: show it as it is
      }
      throw new OutpostError('BAD_REQUEST', `admin API answered ${res.statusCode} ${detail}`, { status: res.statusCode });
    }
    return JSON.parse(text) as T;
  }

  purge(body: { urls?: string[]; prefixes?: string[]; tags?: string[]; all?: boolean; soft?: boolean }): Promise<{ purged: number }> {
    return this.post('/purge', body);
  }

  prefetch(urls: string[]): Promise<{ results: PrefetchResult[]; failed: number }> {
    return this.post('/prefetch', { urls });
  }

  /** Runs `fn` over the items in batches, drawing a progress bar on stderr for long lists. */
  async inBatches(items: readonly string[], size: number, fn: (batch: string[]) => Promise<number>, label: string): Promise<number> {
    let total = 0;
    const showProgress = items.length > size && process.stderr.isTTY !== false;
    for (let i = 0; i < items.length; i += size) {
      total += await fn(items.slice(i, i + size));
      if (showProgress) {
        const done = Math.min(i + size, items.length);
        const width = 30;
        const fill = Math.round((done / items.length) * width);
        process.stderr.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${items.length}`);
      }
    }
    if (showProgress) process.stderr.write('\n');
    return total;
  }
}
