// The early answers gates give: short plain text, never cached.
import { STATUS_CODES } from 'node:http';
import type { EarlyResponse } from '../../edge/phases.ts';

export function refuse(status: number, reason: string, headers: Record<string, string> = {}): EarlyResponse {
  return {
    status,
    headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers },
    body: `${status} ${STATUS_CODES[status] ?? 'Error'}: ${reason}\n`,
  };
}
