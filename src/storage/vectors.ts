/** Brute-force nearest neighbours over unit vectors stored row-major in one Float32Array. */
export function topK(
  query: Float32Array,
  matrix: Float32Array,
  dims: number,
  rows: number,
  k: number,
  accept?: (row: number) => boolean,
): { index: number; score: number }[] {
  const best: { index: number; score: number }[] = [];
  let floor = -Infinity;
  for (let r = 0; r < rows; r++) {
    if (accept && !accept(r)) continue;
    let dot = 0;
    const base = r * dims;
    for (let d = 0; d < dims; d++) dot += (query[d] as number) * (matrix[base + d] as number);
    if (best.length < k || dot > floor) {
      best.push({ index: r, score: dot });
      if (best.length > k) {
        best.sort((a, b) => b.score - a.score);
        best.length = k;
      }
      floor = best.length < k ? -Infinity : Math.min(...best.map((b) => b.score));
    }
  }
  return best.sort((a, b) => b.score - a.score);
}
