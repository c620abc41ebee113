import { expect } from 'vitest';
import { AssistantError } from '../../src/assistant/errors.js';

/** The AssistantError a call throws (fails the test when it throws nothing or something else). */
export function errorOf(f: () => unknown): AssistantError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(AssistantError);
    return err as AssistantError;
  }
  throw new Error('expected an AssistantError, but nothing was thrown');
}

/** The AssistantError a promise rejects with (fails the test when it resolves or rejects with something else). */
export async function rejection(p: Promise<unknown>): Promise<AssistantError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AssistantError);
  return err as AssistantError;
}
