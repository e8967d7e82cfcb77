// What the command files share with the tree that holds them, kept apart so that no command file
// imports program.ts (which imports them all).
import type { Command } from 'commander';

/** A command's action returns its exit code (lib/errors.ts EXIT); this keeps it for main. */
export type Act = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;

/** Every command of the tree with its path, for completion and for the help test. */
export function walk(cmd: Command, prefix: string[] = []): Array<{ path: string[]; cmd: Command }> {
  return cmd.commands.flatMap((c) => [{ path: [...prefix, c.name()], cmd: c }, ...walk(c, [...prefix, c.name()])]);
}
