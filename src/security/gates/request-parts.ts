// Reading and removing query parameters and cookies. Query removal keeps the other parameters'
// raw bytes and order, so the cache key and what the origin receives change only by what was taken.

/** Decodes a form-encoded component ('+' is a space); undefined when the encoding is broken. */
export function decodeComponent(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw.includes('+') ? raw.replace(/\+/g, ' ') : raw);
  } catch {
    return undefined;
  }
}

export interface TakenParams {
  /** Decoded values of the taken parameters, by name, in order of appearance (null: undecodable). */
  readonly values: Map<string, Array<string | null>>;
  /** The raw segments left, in order, empty ones dropped. */
  readonly rest: string[];
}

/** Splits a raw query into the named parameters (decoded) and everything else (raw). */
export function takeParams(query: string, names: ReadonlySet<string>): TakenParams {
  const values = new Map<string, Array<string | null>>();
  const rest: string[] = [];
  if (query === '') return { values, rest };
  for (const seg of query.split('&')) {
    if (seg === '') continue;
    const eq = seg.indexOf('=');
    const rawName = eq < 0 ? seg : seg.slice(0, eq);
    const name = decodeComponent(rawName);
    if (name === undefined || !names.has(name)) {
      rest.push(seg);
      continue;
    }
    const v = decodeComponent(eq < 0 ? '' : seg.slice(eq + 1));
    const list = values.get(name);
    if (list) list.push(v ?? null);
    else values.set(name, [v ?? null]);
  }
  return { values, rest };
}

/** The value of one cookie (decoded), or undefined. The first occurrence wins, as browsers send the most specific first. */
export function readCookie(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join('; ') : header;
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    let v = part.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    try {
      return decodeURIComponent(v);
    } catch {
      return v;
    }
  }
  return undefined;
}

/** One header value as a string: undefined when absent, null when repeated (ambiguous). */
export function singleValue(v: string | string[] | undefined): string | undefined | null {
  if (v === undefined) return undefined;
  if (Array.isArray(v)) return v.length === 1 ? v[0] : null;
  return v;
}
