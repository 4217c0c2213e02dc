// Just enough HTTP/1.1 response framing for the bench's own socket clients: one response at a time,
// Content-Length or chunked bodies.

export interface ResponseReader {
  /** Feeds bytes; returns the status once a whole response has arrived, else undefined. */
  push(chunk: Buffer): number | undefined;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const CHUNKED_END = Buffer.from('0\r\n\r\n');

export function responseReader(): ResponseReader {
  let buf: Buffer = Buffer.alloc(0);
  let headerLen = -1;
  let status = 0;
  let bodyLen = -1;
  let chunked = false;
  return {
    push(chunk) {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (headerLen < 0) {
        const end = buf.indexOf(HEADER_END);
        if (end < 0) return undefined;
        headerLen = end + 4;
        const head = buf.subarray(0, end).toString('latin1');
        status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
        const len = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        chunked = /\r\ntransfer-encoding:[^\r]*chunked/i.test(head);
        bodyLen = len?.[1] !== undefined ? Number(len[1]) : chunked ? -1 : 0;
        if (status === 304 || status === 204) bodyLen = 0;
      }
      const done = chunked ? buf.length >= headerLen + 5 && buf.subarray(buf.length - 5).equals(CHUNKED_END) : buf.length >= headerLen + bodyLen;
      if (!done) return undefined;
      const s = status;
      buf = Buffer.alloc(0);
      headerLen = -1;
      return s;
    },
  };
}
