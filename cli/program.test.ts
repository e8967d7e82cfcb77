// The command tree: every command's help, the ranges of settings, typos, completion, and the
// binary itself for --help, version and a usage error.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cliPath, tempDataDir } from '../bench/harness.js';
import { settingSpec } from '../lib/config.js';
import { EXIT } from '../lib/errors.js';
import { packageVersion } from '../lib/package-root.js';
import { walk } from './command-tree.js';
import { buildProgram, runProgram } from './program.js';

/** Runs the tree in this process, its output captured; returns the exit code or the error thrown. */
async function run(argv: string[]): Promise<{ code: number | null; out: string; err: string; error: Error | null }> {
  let out = '';
  let err = '';
  const built = buildProgram({ out: (s) => (out += s), err: (s) => (err += s) });
  try {
    return { code: await runProgram(argv, built), out, err, error: null };
  } catch (e) {
    return { code: null, out, err, error: e as Error };
  }
}

describe('the command tree', () => {
  const tree = walk(buildProgram().program);

  it('every command and subcommand answers --help with exit 0, naming each of its options and arguments; every command that acts has examples', async () => {
    expect(tree.length).toBeGreaterThan(30);
    for (const { path, cmd } of tree) {
      const { code, out } = await run([...path, '--help']);
      expect(code, path.join(' ')).toBe(EXIT.ok);
      expect(out).toContain(`Usage: changelens ${path.join(' ')}`);
      for (const option of cmd.options) expect(out, `${path.join(' ')} ${option.long}`).toContain(option.long!);
      for (const arg of cmd.registeredArguments) expect(out).toContain(arg.name());
      if (cmd.commands.length === 0) expect(out, `${path.join(' ')} has no examples`).toMatch(/Examples:\n {2}\$ .*changelens/);
    }
  });

  it('deploy takes each setting\'s range from the config table, and says it in its help', async () => {
    const { out } = await run(['deploy', '--help']);
    for (const [flag, key] of [['--step-seconds', 'stepSeconds'], ['--p99-ratio', 'p99Ratio'], ['--max-error-rate', 'maxErrorRate'], ['--progress-deadline', 'progressDeadlineSeconds']] as const) {
      const spec = settingSpec(key);
      expect(out.replace(/\s+/g, ' ')).toContain(flag);
      expect(out.replace(/\s+/g, ' ')).toContain(`${spec.expected}; the appliance's ${spec.env}, default ${spec.default}`);
    }
  });

  it('a number given to a setting flag is accepted exactly when the setting itself would accept it (property)', async () => {
    const flags = [['--step-seconds', 'stepSeconds'], ['--window-seconds', 'windowSeconds'], ['--p99-ratio', 'p99Ratio'], ['--max-error-rate', 'maxErrorRate'], ['--min-samples', 'minSamples'], ['--mirror-percent', 'mirrorPercent']] as const;
    const program = buildProgram().program;
    const deploy = program.commands.find((c) => c.name() === 'deploy')!;
    await fc.assert(fc.property(
      fc.constantFrom(...flags),
      fc.oneof(fc.integer({ min: -10, max: 100_000 }), fc.double({ min: -1, max: 2_000, noNaN: true, noDefaultInfinity: true })),
      ([flag, key], n) => {
        const option = deploy.options.find((o) => o.long === flag)!;
        const raw = String(n);
        let accepted: unknown;
        try {
          accepted = option.parseArg!(raw, undefined);
        } catch {
          accepted = undefined;
        }
        // Exponent forms ("1e-7") are not how people write flags: refused even where the value fits.
        const plain = /^-?(\d+\.?\d*|\.\d+)$/.test(raw);
        expect(accepted !== undefined).toBe(plain && settingSpec(key).check(Number(raw)) !== undefined);
      },
    ), { numRuns: 400 });
  });

  it('a typo gets "did you mean", and the hint names the help of the command it was for', async () => {
    const command = await run(['stauts']);
    expect(command.error).toMatchObject({ code: 'CL_ERR_CLI_USAGE', message: "unknown command 'stauts' (did you mean status?)", hint: 'run: changelens --help' });
    const option = await run(['backup', 'verify', 'x', '--jsno']);
    expect(option.error).toMatchObject({ code: 'CL_ERR_CLI_USAGE', message: "unknown option '--jsno' (did you mean --json?)", hint: 'run: changelens backup verify --help' });
    const sub = await run(['backup', 'verfy']);
    expect(sub.error?.message).toBe("unknown command 'verfy' (did you mean verify?)");
    const range = await run(['logs', '--lines', '0']);
    expect(range.error?.message).toBe("option '-n, --lines <n>' argument '0' is invalid. expected an integer 1-99999");
    // A command's own check of its arguments also points at that command's help.
    const own = await run(['deploy', 'v2', '--timeout', '5']);
    expect(own.error).toMatchObject({ message: '--timeout: only with --wait', hint: 'run: changelens deploy --help' });
    // No command: the help, on stderr, as bad usage; a group without its subcommand likewise.
    expect(await run([])).toMatchObject({ code: EXIT.usage, err: expect.stringContaining('Usage: changelens') });
    expect(await run(['backup'])).toMatchObject({ code: EXIT.usage, err: expect.stringContaining('Usage: changelens backup') });
    expect(await run(['help', 'deploy'])).toMatchObject({ code: EXIT.ok, out: expect.stringContaining('Usage: changelens deploy') });
  });

  it('bash completion from the same tree: commands, subcommands, options and choices', async () => {
    const printed = spawnSync(process.execPath, [cliPath, 'completion', 'bash'], { encoding: 'utf8' });
    expect(printed.status).toBe(EXIT.ok);
    const script = join(tempDataDir(), 'changelens.bash');
    writeFileSync(script, printed.stdout);
    const complete = (words: string[]): string[] => {
      const r = spawnSync('bash', ['-c', `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _changelens; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      return r.stdout.split('\n').filter(Boolean);
    };
    expect(complete(['changelens', 'dep'])).toEqual(['deploy', 'deployments', 'deployment']);
    expect(complete(['changelens', 'backup', 'v'])).toEqual(['verify']);
    expect(complete(['changelens', 'deploy', 'v2', '--strategy', ''])).toEqual(['canary', 'bluegreen', 'direct']);
    expect(complete(['changelens', 'deploy', 'v2', '--step-s'])).toEqual(['--step-seconds']);
    expect(complete(['changelens', 'logs', '--lev'])).toEqual(['--level']);
    expect(complete(['changelens', 'regression', 'set', ''])).toEqual(expect.arrayContaining(['blue', 'green']));
    // zsh is not on this machine: its script is the bash one under zsh's bash emulation.
    const zsh = spawnSync(process.execPath, [cliPath, 'completion', 'zsh'], { encoding: 'utf8' }).stdout;
    expect(zsh).toMatch(/^#compdef changelens\n/);
    expect(zsh).toContain('autoload -U +X bashcompinit && bashcompinit');
    expect(zsh).toContain('complete -o default -F _changelens changelens');
  });
});

describe('the binary', () => {
  const cli = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH!, CHANGELENS_DATA_DIR: tempDataDir(), ...env } });

  it('--help of a subcommand, version (--json), -v, and a usage error with its exit code', () => {
    const help = cli(['backup', 'restore', '--help']);
    expect([help.status, help.stdout]).toEqual([0, expect.stringContaining('Usage: changelens backup restore [options] <id>')]);
    const version = cli(['version', '--json']);
    expect(version.status).toBe(0);
    expect(JSON.parse(version.stdout)).toEqual({ version: packageVersion, node: process.version, platform: `${process.platform}-${process.arch}`, appliance: null });
    expect(cli(['-v'])).toMatchObject({ status: 0, stdout: `${packageVersion}\n` });
    const bad = cli(['deploy', 'v2', '--window-seconds', '61']);
    expect(bad.status).toBe(EXIT.usage);
    expect(bad.stderr).toBe("CL_ERR_CLI_USAGE: option '--window-seconds <seconds>' argument '61' is invalid. expected seconds 1-60\nhint: run: changelens deploy --help\n");
  });
});
