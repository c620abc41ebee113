export * from './load.js';
export { configurationReference } from './reference.js';
export { configSchema, isValidTimeZone, type ConfigInput } from './schema.js';

/** Whether standard error is an interactive terminal (read here so nothing else touches process state). */
export function stderrIsTerminal(): boolean {
  return process.stderr.isTTY === true;
}
