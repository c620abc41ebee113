export type AssistantErrorCode = 'invalid_input' | 'not_found' | 'conflict' | 'too_large' | 'unavailable';

/** A failure the caller can fix: it names the field, the reason and what would be accepted. */
export class AssistantError extends Error {
  readonly code: AssistantErrorCode;
  readonly field: string | undefined;
  readonly hint: string | undefined;

  constructor(code: AssistantErrorCode, message: string, options: { field?: string; hint?: string } = {}) {
    super(options.field ? `${options.field}: ${message}` : message);
    this.name = 'AssistantError';
    this.code = code;
    this.field = options.field;
    this.hint = options.hint;
  }
}

export function invalid(field: string, message: string, hint?: string): AssistantError {
  return new AssistantError('invalid_input', message, { field, ...(hint ? { hint } : {}) });
}

export function notFound(kind: string, id: string, field?: string): AssistantError {
  return new AssistantError('not_found', `no ${kind} with id "${id}"`, {
    ...(field ? { field } : {}),
    hint: `Use list or search tools to find the ${kind}'s id; deleted items can be restored with restore_items.`,
  });
}
