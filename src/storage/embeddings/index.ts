import type { Config } from '../../config/index.js';
import type { Logger } from '../../observability/logger.js';
import { OpenAICompatibleProvider } from './openai-compatible.js';
import { HashEmbeddingProvider, type EmbeddingProvider } from './provider.js';

export { EmbeddingError, OpenAICompatibleProvider, parseRetryAfter } from './openai-compatible.js';
export type { OpenAICompatibleOptions } from './openai-compatible.js';
export { HashEmbeddingProvider } from './provider.js';
export type { EmbeddingProvider } from './provider.js';

/** The provider the configuration asks for, or undefined when semantic search is off. */
export function createEmbeddingProvider(
  config: Pick<Config, 'features' | 'embeddings'>,
  logger?: Logger,
): EmbeddingProvider | undefined {
  const e = config.embeddings;
  if (!config.features.vector_search) return undefined;
  switch (e.provider) {
    case 'none':
      return undefined;
    case 'hash':
      return new HashEmbeddingProvider(e.dimensions, e.relevance_floor);
    case 'openai-compatible':
      if (e.base_url === undefined || e.model === undefined) {
        // The configuration schema refuses this; kept for callers building a Config by hand.
        throw new Error('embeddings.base_url and embeddings.model are required for openai-compatible');
      }
      return new OpenAICompatibleProvider({
        baseUrl: e.base_url,
        model: e.model,
        apiKey: e.api_key,
        dimensions: e.dimensions,
        sendDimensions: e.send_dimensions,
        timeoutMs: e.timeout_ms,
        maxRetries: e.max_retries,
        batchSize: e.batch_size,
        ...(e.relevance_floor === undefined ? {} : { relevanceFloor: e.relevance_floor }),
        logger,
      });
  }
}
