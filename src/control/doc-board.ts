// The documents (rules, IP lists) an edge process holds, as the node's store last delivered them.
// Workers feed it with every snapshot the primary pushes; what uses a document (the IP list gate,
// the rules engine) watches the names it cares about and rebuilds its compiled form only when the
// version of one of them changed — never per request.
import type { StoredDoc } from '../compute/store/store.ts';

export type DocListener = (changed: readonly string[]) => void;

export class DocBoard {
  #docs = new Map<string, StoredDoc>();
  readonly #listeners = new Set<DocListener>();

  /** Takes a snapshot's documents; listeners hear the names that were added, changed or removed. */
  apply(docs: readonly StoredDoc[]): void {
    const next = new Map(docs.map((d) => [d.name, d]));
    const changed: string[] = [];
    for (const [name, d] of next) if (this.#docs.get(name)?.version !== d.version) changed.push(name);
    for (const name of this.#docs.keys()) if (!next.has(name)) changed.push(name);
    this.#docs = next;
    if (changed.length === 0) return;
    for (const l of [...this.#listeners]) l(changed);
  }

  get(name: string): StoredDoc | undefined {
    return this.#docs.get(name);
  }

  names(): string[] {
    return [...this.#docs.keys()];
  }

  /** Calls `listener` after every change; returns the unsubscribe function. */
  watch(listener: DocListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
