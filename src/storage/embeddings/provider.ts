/** Turns text into unit vectors for semantic search. */
export interface EmbeddingProvider {
  /** Recorded with every vector; when it changes, vectors are re-made. */
  readonly model: string;
  readonly dimensions: number;
  /**
   * Cosine similarity at or below which a vector match says nothing about relevance (the provider's noise level).
   * Applied to raw similarities before fusion; fused scores are ranks and are never thresholded.
   */
  readonly relevanceFloor: number;
  /** Throws when the vectors cannot be made; callers store the items as pending instead. */
  embed(texts: readonly string[]): Promise<Float32Array[]>;
  /** Stops work in flight (remote providers); later calls fail. */
  close?(): void;
}

/**
 * Offline, deterministic embeddings by feature hashing of words and word pairs. Weak on meaning (it only knows
 * shared words and their stems), but free, fast and reproducible: the default where vectors are on.
 */
export class HashEmbeddingProvider implements EmbeddingProvider {
  readonly model: string;
  /** Texts sharing no word score about 0 (hash collisions add a little); one shared word among ten scores ≈ 0.3. */
  readonly relevanceFloor: number;
  constructor(
    readonly dimensions = 256,
    relevanceFloor = 0.12,
  ) {
    this.model = `hash-v1-${dimensions}`;
    this.relevanceFloor = relevanceFloor;
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    return texts.map((t) => this.embedOne(t));
  }

  embedOne(text: string): Float32Array {
    const v = new Float32Array(this.dimensions);
    const words = (
      text
        .toLowerCase()
        .normalize('NFKD')
        .match(/[\p{L}\p{N}]+/gu) ?? []
    ).map(stem);
    const add = (token: string, weight: number): void => {
      const h = fnv1a(token);
      const index = h % this.dimensions;
      v[index] = (v[index] as number) + ((h >>> 31) & 1 ? -weight : weight);
    };
    for (let i = 0; i < words.length; i++) {
      add(words[i] as string, 1);
      if (i > 0) add(`${words[i - 1]} ${words[i]}`, 0.5);
    }
    let norm = 0;
    for (const x of v) norm += x * x;
    norm = Math.sqrt(norm);
    if (norm > 0) for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / norm;
    return v;
  }
}

function stem(word: string): string {
  return word.length > 4 ? word.replace(/(ing|ed|es|s)$/u, '') : word;
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
