// The changelens command tree (commander): every command and subcommand has --help with each of its
// options, their ranges and examples; a typo gets "did you mean"; `completion` prints shell
// completion from this same tree. Commands return their exit code (lib/errors.ts EXIT).
import { Command, CommanderError } from 'commander';
import { ChangeLensError, CL_ERR_CLI_USAGE, EXIT } from '../lib/errors.js';
import { packageVersion } from '../lib/package-root.js';
import { registerApplianceCommands } from './appliance-commands.js';
import type { Act } from './command-tree.js';
import { registerBackupCommands } from './backup-commands.js';
import { registerBenchCommands } from './bench-commands.js';
import { registerCompletion } from './completion.js';
import { registerLogsCommand } from './logs-command.js';
import { registerRegressionCommands } from './regression-commands.js';
import { registerRolloutCommands } from './rollout-commands.js';
import { registerWatchCommands } from './watch-commands.js';

export const EXIT_CODES_HELP = `Exit codes:
  0  ok (deploy --wait and wait: promoted)
  1  failure (rolled back, a bad backup, a failed request)
  2  bad usage or configuration
  3  not running or unreachable
  4  no verdict (paused, aborted, --timeout passed)
  5  unauthorized`;

export interface Program {
  program: Command;
  /** What the command that ran returned (after parseAsync). */
  exitCode: () => number;
}


export function buildProgram(output: { out: (s: string) => void; err: (s: string) => void } = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }): Program {
  let code: number = EXIT.ok;
  const act: Act = (fn) => async (...args) => {
    code = await fn(...args);
  };
  const program = new Command('changelens')
    .description('one appliance that runs a small web system and guards every change')
    .version(packageVersion, '-v, --version', 'the version of this command')
    .helpOption('-h, --help', 'show this help')
    .helpCommand('help [command]', 'the help of a command')
    // Settings every subcommand copies from here (they must come before the first .command()).
    .exitOverride()
    .configureOutput({ writeOut: output.out, writeErr: output.err, outputError: () => {} })
    .showSuggestionAfterError(true)
    .configureHelp({ showGlobalOptions: false, sortOptions: false, helpWidth: 110 })
    .addHelpText('after', `
Configuration comes from environment variables (PORT, CHANGELENS_DATA_DIR, DATABASE_URL, REDIS_URL, …)
and an optional JSON file (--config or CHANGELENS_CONFIG): changelens config --reference lists them.
Commands that talk to an appliance take --url URL (or CHANGELENS_URL) and CHANGELENS_ADMIN_TOKEN for a
remote one. Every command has --help, and --json for scripts where it prints something.

${EXIT_CODES_HELP}`);

  registerApplianceCommands(program, act);
  registerRolloutCommands(program, act);
  registerWatchCommands(program, act);
  registerLogsCommand(program, act);
  registerBackupCommands(program, act);
  registerRegressionCommands(program, act);
  registerBenchCommands(program, act);
  registerCompletion(program, act);
  return { program, exitCode: () => code };
}

/**
 * Runs the command line; parse errors become CL_ERR_CLI_USAGE naming the command whose help to
 * read. --help and --version exit 0; no command at all prints the help and exits 2.
 */
export async function runProgram(argv: readonly string[], built: Program = buildProgram()): Promise<number> {
  try {
    await built.program.parseAsync([...argv], { from: 'user' });
    return built.exitCode();
  } catch (err) {
    const path = commandPath(built.program, argv);
    const hint = `run: changelens ${path ? `${path} ` : ''}--help`;
    // A command's own check of its arguments: the hint names that command's help.
    if (err instanceof ChangeLensError && err.code === CL_ERR_CLI_USAGE.code) throw new ChangeLensError(err.code, 400, err.message, hint);
    if (!(err instanceof CommanderError)) throw err;
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
    // `help` asked for is 0; the help shown because a command needs a subcommand is bad usage.
    if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const message = err.message.replace(/^error: /, '').replace(/\n\(Did you mean (.+)\?\)$/, ' (did you mean $1?)');
    throw new ChangeLensError(CL_ERR_CLI_USAGE.code, 400, message, hint);
  }
}

/** The deepest command the words name ("backup verify" for `backup verify x --jsn`). */
export function commandPath(program: Command, argv: readonly string[]): string {
  const names: string[] = [];
  let cmd = program;
  for (const word of argv) {
    if (word.startsWith('-')) continue;
    const sub = cmd.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (!sub) break;
    names.push(sub.name());
    cmd = sub;
  }
  return names.join(' ');
}
