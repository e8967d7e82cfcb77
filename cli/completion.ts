// `changelens completion bash|zsh`: shell completion of commands, subcommands, options and option
// choices, generated from the same command tree the parser uses (so it cannot drift from it).
import { Argument, type Command, type Option } from 'commander';
import { EXIT } from '../lib/errors.js';
import { examples } from './options.js';
import type { Act } from './command-tree.js';
import { walk } from './command-tree.js';

export function registerCompletion(program: Command, act: Act): void {
  const completion = program.command('completion')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh']))
    .description('print a shell completion script for changelens');
  examples(completion, ['source <(changelens completion bash)      # this shell; add it to ~/.bashrc to keep it', 'changelens completion zsh > "${fpath[1]}/_changelens"']);
  completion.action(act(async (shell: 'bash' | 'zsh') => {
    process.stdout.write(shell === 'bash' ? bashScript(program) : zshScript(program));
    return EXIT.ok;
  }));
}

/** Each command path ("" for the root, "backup verify") → the words that may follow it. */
export function completionTable(program: Command): Map<string, { words: string[]; choices: Record<string, string[]> }> {
  const table = new Map<string, { words: string[]; choices: Record<string, string[]> }>();
  const entry = (cmd: Command): { words: string[]; choices: Record<string, string[]> } => {
    const options = [...cmd.options] as Option[];
    const choices: Record<string, string[]> = {};
    for (const o of options) if (o.argChoices && o.long) choices[o.long] = [...o.argChoices];
    const argChoices = cmd.registeredArguments.flatMap((a) => a.argChoices ?? []);
    return {
      words: [...cmd.commands.map((c) => c.name()), ...argChoices, ...options.flatMap((o) => [o.long, o.short].filter((x): x is string => x !== undefined)), '--help'],
      choices,
    };
  };
  table.set('', entry(program));
  for (const { path, cmd } of walk(program)) table.set(path.join(' '), entry(cmd));
  return table;
}

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

function bashScript(program: Command): string {
  const table = completionTable(program);
  const cases = [...table].map(([path, { words, choices }]) => {
    const choiceCases = Object.entries(choices).map(([flag, list]) => `        ${flag}) COMPREPLY=($(compgen -W ${quote(list.join(' '))} -- "$cur")); return;;`).join('\n');
    return `    ${quote(path)})\n      case "$prev" in\n${choiceCases}\n      esac\n      COMPREPLY=($(compgen -W ${quote(words.join(' '))} -- "$cur"));;`;
  }).join('\n');
  const paths = [...table.keys()].filter(Boolean).map(quote).join(' ');
  return `# changelens completion for bash: source <(changelens completion bash)
_changelens() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" path="" word i
  # The deepest known command the words so far name.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    [[ "$word" == -* ]] && continue
    for known in ${paths}; do
      if [[ "\${path:+$path }$word" == "$known" ]]; then path="$known"; break; fi
    done
  done
  case "$path" in
${cases}
  esac
}
complete -o default -F _changelens changelens
`;
}

function zshScript(program: Command): string {
  // zsh runs the bash function through its bash completion emulation: one table, two shells.
  return `#compdef changelens
# changelens completion for zsh: changelens completion zsh > "\${fpath[1]}/_changelens"
autoload -U +X bashcompinit && bashcompinit
${bashScript(program).split('\n').filter((l) => !l.startsWith('# changelens completion for bash')).join('\n')}`;
}
