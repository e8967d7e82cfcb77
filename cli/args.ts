// Argument parsing shared by every command: strict (an unknown option is an error naming it).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CL_ERR_CLI_USAGE } from '../lib/errors.js';

export function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args, options, strict: true as const, allowPositionals });
  } catch (err) {
    throw new CL_ERR_CLI_USAGE((err as Error).message);
  }
}
