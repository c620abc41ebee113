/**
 * Progress on a terminal for long work (migrations, re-embedding, imports): one line rewritten in place, nothing
 * at all when the stream is a pipe or a file (logs stay clean).
 */

/**
 * A progress line on a terminal: each update rewrites the line (`\r`, then clear to its end); done() ends it
 * with a newline if anything was shown. Writes nothing when `terminal` is false (a pipe or a file).
 */
export function progressLine(
  stream: NodeJS.WritableStream,
  terminal: boolean,
): { update(text: string): void; done(): void } {
  let shown = false;
  return {
    update(text: string) {
      if (!terminal) return;
      stream.write(`\r${text}\u001b[K`);
      shown = true;
    },
    done() {
      if (shown) stream.write('\n');
      shown = false;
    },
  };
}

/** Migration progress on a terminal: `migrating database: 2/5 <name>`, the line ended once they are done. */
export function migrationProgress(stream: NodeJS.WritableStream, terminal: boolean): MigrationProgressLine {
  const line = progressLine(stream, terminal);
  return {
    step: (step) => line.update(`migrating database: ${step.index}/${step.total} ${step.name}`),
    done: () => line.done(),
  };
}

/** What migrationProgress returns: step() before each pending migration, done() once they are all applied. */
export interface MigrationProgressLine {
  step(step: { readonly index: number; readonly total: number; readonly name: string }): void;
  done(): void;
}
