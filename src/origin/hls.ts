// A small live HLS stream for the demo origin: a media playlist whose window advances every
// segment duration, and segments of filler bytes. Enough to see playlist rewriting at the edge.

export const SEGMENT_SECONDS = 2;
const WINDOW = 5;

/** The media playlist of `name` at time `now`: the last WINDOW segments of an endless live stream. */
export function livePlaylist(name: string, now = Date.now()): string {
  const newest = Math.floor(now / 1000 / SEGMENT_SECONDS);
  const first = newest - WINDOW + 1;
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', `#EXT-X-TARGETDURATION:${SEGMENT_SECONDS}`, `#EXT-X-MEDIA-SEQUENCE:${first}`];
  for (let seq = first; seq <= newest; seq++) lines.push(`#EXTINF:${SEGMENT_SECONDS}.000,`, `${name}_${seq}.ts`);
  return `${lines.join('\n')}\n`;
}

/** Filler bytes for one segment (MPEG-TS packets are 188 bytes; the content is not real video). */
export function segmentBody(seq: number): Buffer {
  const b = Buffer.alloc(188 * 64, 0xff);
  for (let i = 0; i < b.length; i += 188) {
    b[i] = 0x47;
    b.writeUInt32BE(seq >>> 0, i + 4);
  }
  return b;
}

export const HLS_PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';
export const HLS_SEGMENT_TYPE = 'video/mp2t';
