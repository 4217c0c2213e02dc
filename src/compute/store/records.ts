// How CU records are encoded in a store, and how what a store holds is turned back into CUs. A
// record may have been written by hand (redis-cli) or by an older Outpost, so everything read is
// validated here; a bad record becomes an error message for `invalid`, never an exception.
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { OutpostError } from '../../errors.ts';
import { CuInputSchema, CuSettingsSchema, DEFAULT_CU_SETTINGS, type CuRecord, type CuSettings, type CuSpec } from '../cu.ts';
import { DOC_NAME_RE, type StoredDoc } from './store.ts';

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(record)'}: ${i.message}`).join('; ');
}

/** Validates a spec on its way into a store (the API has validated it already; other callers may not have). */
export function checkSpec(spec: CuSpec): CuSpec {
  const parsed = CuInputSchema.safeParse(spec);
  if (!parsed.success) throw new OutpostError('CU_INVALID', `CU ${JSON.stringify(spec?.id)}: ${issues(parsed.error)}`);
  return parsed.data;
}

export function checkSettings(settings: CuSettings): CuSettings {
  const parsed = CuSettingsSchema.safeParse(settings);
  if (!parsed.success) throw new OutpostError('CU_INVALID', `CU settings: ${issues(parsed.error)}`);
  return parsed.data;
}

/** The stored form of a CU: its spec plus version and updatedAt, as one JSON object. */
export function encodeRecord(record: CuRecord): string {
  return JSON.stringify(record);
}

/** Reads a stored record (JSON of the spec plus version/updatedAt) found under `id`. */
export function decodeRecord(id: string, raw: string): Parsed<CuRecord> {
  let obj: unknown;
  try {
    obj = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return { ok: false, error: 'expected a JSON object' };
  const { version, updatedAt, ...spec } = obj as Record<string, unknown>;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    return { ok: false, error: `version: expected a positive integer, got ${JSON.stringify(version)}` };
  }
  if (typeof updatedAt !== 'string' || Number.isNaN(Date.parse(updatedAt))) {
    return { ok: false, error: `updatedAt: expected an ISO date, got ${JSON.stringify(updatedAt)}` };
  }
  const parsed = CuInputSchema.safeParse(spec);
  if (!parsed.success) return { ok: false, error: issues(parsed.error) };
  if (parsed.data.id !== id) return { ok: false, error: `id: the record says ${JSON.stringify(parsed.data.id)} but is stored as ${JSON.stringify(id)}` };
  return { ok: true, value: { ...parsed.data, version, updatedAt } };
}

const SEED_SAMPLING_RE = /^\d{1,3}(\.\d+)?$/;
/** Seed records carry no date. */
export const SEED_UPDATED_AT = new Date(0).toISOString();

/**
 * Reads a CU in the seeds' format: `phase||code` or `phase||code||sampling`. Code may itself
 * contain `||` (JavaScript's or), so the phase is what precedes the first `||`, and the last part
 * is the sampling only when it is a bare number. The version is derived from the value, so any
 * edit of the value is a new version.
 */
export function decodeSeedValue(id: string, raw: string): Parsed<CuRecord> {
  const first = raw.indexOf('||');
  if (first < 0) return { ok: false, error: 'expected "phase||code" or "phase||code||sampling" (seed format)' };
  const phase = raw.slice(0, first);
  let code = raw.slice(first + 2);
  let sampling: number | undefined;
  const last = code.lastIndexOf('||');
  if (last >= 0 && SEED_SAMPLING_RE.test(code.slice(last + 2))) {
    sampling = Number(code.slice(last + 2));
    code = code.slice(0, last);
  }
  const parsed = CuInputSchema.safeParse(sampling === undefined ? { id, phase, code } : { id, phase, code, sampling });
  if (!parsed.success) return { ok: false, error: `seed format: ${issues(parsed.error)}` };
  return { ok: true, value: { ...parsed.data, version: seedVersion(raw), updatedAt: SEED_UPDATED_AT } };
}

/** 48 bits of SHA-256: a safe integer that changes whenever the value does. */
export function seedVersion(raw: string): number {
  return createHash('sha256').update(raw).digest().readUIntBE(0, 6);
}

export function decodeSettings(raw: string | null | undefined): Parsed<CuSettings> {
  if (raw === null || raw === undefined) return { ok: true, value: DEFAULT_CU_SETTINGS };
  let obj: unknown;
  try {
    obj = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  const parsed = CuSettingsSchema.safeParse(obj);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, error: issues(parsed.error) };
}

export function checkDocName(name: string): string {
  if (typeof name !== 'string' || !DOC_NAME_RE.test(name)) {
    throw new OutpostError('BAD_REQUEST', `document name ${JSON.stringify(name)}: expected lower-case letters, digits, '-', '_', '.', ':' (at most 200)`);
  }
  return name;
}

/** The stored JSON of a document; refuses values JSON cannot carry. */
export function encodeDoc(doc: StoredDoc): string {
  const text = JSON.stringify(doc);
  if (text === undefined) throw new OutpostError('BAD_REQUEST', `document ${doc.name}: the value is not JSON`);
  return text;
}

export function decodeDoc(name: string, raw: string): StoredDoc | { error: string } {
  try {
    const d = JSON.parse(raw) as Partial<StoredDoc>;
    if (typeof d !== 'object' || d === null || typeof d.version !== 'number' || !Number.isInteger(d.version) || typeof d.updatedAt !== 'string' || !('value' in d)) {
      return { error: 'expected {"name", "version", "updatedAt", "value"}' };
    }
    return { name, version: d.version, updatedAt: d.updatedAt, value: d.value };
  } catch (err) {
    return { error: `not JSON: ${(err as Error).message}` };
  }
}
