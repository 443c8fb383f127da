/** Shared CLI plumbing: output streams, option parsing with one-line reasons. */
import { EngineError } from '../engine/errors';
import { DEVICES, type Device } from '../engine/model/runtime';

export interface Output {
  info(line: string): void;
  error(line: string): void;
}

export const consoleOutput: Output = {
  info: (line) => process.stdout.write(`${line}\n`),
  error: (line) => process.stderr.write(`${line}\n`),
};

export function parseDevice(value: string): Device {
  if (!DEVICES.includes(value as Device)) throw new EngineError('backend-unavailable', `--device must be one of ${DEVICES.join(', ')}, got "${value}"`);
  return value as Device;
}

export function parseThreads(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new EngineError('bad-config', `--threads must be a positive integer, got "${value}"`);
  return n;
}
