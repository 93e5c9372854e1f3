// Cuts a byte stream into fixed-size chunks, as the floor benchmarks compress it (not the
// builder's code: the floors measure what any converter must do, without our builder).

/**
 * Calls `onChunk` with each `size`-byte chunk of `source` (the last may be shorter), each in a
 * fresh buffer the callee may keep, waiting for it before cutting the next.
 */
export async function forEachFixedChunk(source, size, onChunk) {
  let buf = Buffer.allocUnsafe(size);
  let fill = 0;
  for await (const piece of source) {
    let pos = 0;
    while (pos < piece.length) {
      const n = Math.min(size - fill, piece.length - pos);
      piece.copy(buf, fill, pos, pos + n);
      fill += n;
      pos += n;
      if (fill === size) {
        await onChunk(buf);
        buf = Buffer.allocUnsafe(size);
        fill = 0;
      }
    }
  }
  if (fill > 0) await onChunk(buf.subarray(0, fill));
}
