#!/usr/bin/env node
// The changelens command: how operators and scripts drive the appliance. The command tree is in
// program.ts; here an error becomes its code, message and hint on stderr, and the exit code.
import { ChangeLensError, exitCodeFor } from '../lib/errors.js';
import { runProgram } from './program.js';

runProgram(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ChangeLensError) {
      process.stderr.write(`${err.code}: ${err.message}\nhint: ${err.hint}\n`);
    } else {
      process.stderr.write(`CL_ERR_INTERNAL: ${(err as Error)?.stack ?? String(err)}\n`);
    }
    process.exit(exitCodeFor(err));
  },
);
