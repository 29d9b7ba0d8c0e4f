import type { Argument, Command, Option } from 'commander';
import { nameKindOf } from './names.js';

/**
 * Shell completion made from the program's own definitions: the commands, options and arguments
 * commander holds (program.commands, walked), and the kind of name each argument or option takes
 * (names.ts). The scripts carry the command tree as tables; live names come at TAB time from
 * `kumo __complete KIND PREFIX`, which reads the local store only.
 *
 * A value is completed by its spec: `@KIND` names of that kind, `=a,b` those choices, `-` files.
 */
export interface CompletionNode {
  /** The command line up to this command: "kumo instance show". */
  path: string;
  subcommands: string[];
  /** Every flag, long and short. */
  options: string[];
  /** The flags that take a value, with the spec of their value. */
  values: { flag: string; spec: string }[];
  /** One spec per argument; a variadic one ends with "...". */
  args: string[];
}

function specOf(x: Argument | Option): string {
  const kind = nameKindOf(x);
  if (kind) return `@${kind}`;
  if (x.argChoices?.length) return `=${x.argChoices.join(',')}`;
  return '-';
}

/** The tree under `program`, parents first. */
export function completionTree(program: Command): CompletionNode[] {
  const help = program.createHelp();
  const nodes: CompletionNode[] = [];
  const walk = (cmd: Command, path: string, siblings: string[]) => {
    const subs = help.visibleCommands(cmd);
    const options = help.visibleOptions(cmd);
    const args = cmd.registeredArguments.map((a) => `${specOf(a)}${a.variadic ? '...' : ''}`);
    // commander's own `help [command]` (not one of the parent's commands) takes a sibling's name.
    const isHelp = cmd.name() === 'help' && !cmd.parent?.commands.includes(cmd);
    nodes.push({
      path,
      subcommands: subs.map((c) => c.name()),
      options: options.flatMap((o) => [o.short, o.long].filter((f): f is string => !!f)),
      values: options.filter((o) => o.required || o.optional)
        .flatMap((o) => [o.short, o.long].filter((f): f is string => !!f).map((flag) => ({ flag, spec: specOf(o) }))),
      args: isHelp ? [`=${siblings.filter((n) => n !== 'help').join(',')}`] : args,
    });
    for (const sub of subs) walk(sub, `${path} ${sub.name()}`, subs.map((c) => c.name()));
  };
  walk(program, program.name(), []);
  return nodes;
}

/** A shell word in single quotes (names and flags hold no quote, but say so safely anyway). */
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function tables(nodes: CompletionNode[], declare: string): string[] {
  const table = (name: string, entries: [string, string][]) =>
    [`${declare} ${name}`, `${name}=(`, ...entries.map(([k, v]) => `  [${q(k)}]=${q(v)}`), ')'];
  return [
    ...table('_kumo_sub', nodes.filter((n) => n.subcommands.length).map((n) => [n.path, n.subcommands.join(' ')])),
    ...table('_kumo_opt', nodes.map((n) => [n.path, n.options.join(' ')])),
    ...table('_kumo_val', nodes.flatMap((n) => n.values.map((v): [string, string] => [`${n.path} ${v.flag}`, v.spec]))),
    ...table('_kumo_arg', nodes.filter((n) => n.args.length).map((n) => [n.path, n.args.join(' ')])),
  ];
}

const HEADER = (shell: string, target: string) => [
  `# ${shell} completion for kumo, made by \`kumo completion ${shell}\` from kumo's own command definitions.`,
  `# Install: kumo completion ${shell} > ${target}`,
];

/** Walks the words before the cursor: the command path, how many arguments, and an option waiting for its value. */
const WALK = `  for (( i = %FIRST%; i < %LAST%; i++ )); do
    w=%WORD%
    if [[ -n $pending ]]; then pending=; continue; fi
    if [[ $w == -* ]]; then
      if [[ $w != *=* && -n \${_kumo_val[$kpath $w]+set} ]]; then pending=$w; fi
    elif (( n == 0 )) && [[ " \${_kumo_sub[$kpath]-} " == *" $w "* ]]; then
      kpath+=" $w"
    else
      n=$((n + 1))
    fi
  done`;
const walk = (first: string, last: string, word: string) => WALK.replace('%FIRST%', first).replace('%LAST%', last).replace('%WORD%', word);

export function bashScript(program: Command): string {
  return [
    ...HEADER('bash', '/usr/share/bash-completion/completions/kumo'),
    ...tables(completionTree(program), 'declare -gA'),
    `_kumo_words() {
  local spec=$1 cur=$2 kumo=$3 IFS=$'\\n'
  case $spec in
    '@'*) COMPREPLY=( $(compgen -W "$("$kumo" __complete "\${spec#@}" "$cur" 2>/dev/null)" -- "$cur") ) ;;
    '='*) IFS=','; local -a c=( \${spec#=} ); IFS=$'\\n'; COMPREPLY=( $(compgen -W "\${c[*]}" -- "$cur") ) ;;
    *) COMPREPLY=( $(compgen -f -- "$cur") ) ;;
  esac
}`,
    `_kumo() {
  local cur=\${COMP_WORDS[COMP_CWORD]} kpath=kumo w i n=0 pending= spec
  COMPREPLY=()
${walk('1', 'COMP_CWORD', '${COMP_WORDS[i]}')}
  if [[ -n $pending ]]; then _kumo_words "\${_kumo_val[$kpath $pending]}" "$cur" "\${COMP_WORDS[0]}"; return 0; fi
  if [[ $cur == -* ]]; then COMPREPLY=( $(compgen -W "\${_kumo_opt[$kpath]-}" -- "$cur") ); return 0; fi
  if (( n == 0 )) && [[ -n \${_kumo_sub[$kpath]-} ]]; then COMPREPLY=( $(compgen -W "\${_kumo_sub[$kpath]}" -- "$cur") ); return 0; fi
  local -a specs=( \${_kumo_arg[$kpath]-} )
  spec=\${specs[n]-}
  if [[ -z $spec && \${#specs[@]} -gt 0 && \${specs[-1]} == *... ]]; then spec=\${specs[-1]}; fi
  if [[ -n $spec ]]; then _kumo_words "\${spec%...}" "$cur" "\${COMP_WORDS[0]}"; fi
  return 0
}`,
    'complete -F _kumo kumo',
    '',
  ].join('\n');
}

export function zshScript(program: Command): string {
  return [
    '#compdef kumo',
    ...HEADER('zsh', '/usr/share/zsh/vendor-completions/_kumo'),
    ...tables(completionTree(program), 'typeset -gA'),
    // compadd filters by the typed prefix itself; the script filters too so the offer is the same everywhere.
    `_kumo_words() {
  local spec=$1 cur=$2 kumo=$3
  local -a c
  case $spec in
    '@'*) c=( \${(f)"$($kumo __complete \${spec#@} $cur 2>/dev/null)"} ) ;;
    '='*) c=( \${(s:,:)\${spec#=}} ) ;;
    *) _files; return ;;
  esac
  compadd -- \${(M)c:#\${cur}*}
}`,
    `_kumo() {
  local cur=\${words[CURRENT]} kpath=kumo w i n=0 pending= spec
  local -a specs c
${walk('2', 'CURRENT', '${words[i]}')}
  if [[ -n $pending ]]; then _kumo_words "\${_kumo_val[$kpath $pending]}" "$cur" "\${words[1]}"; return; fi
  if [[ $cur == -* ]]; then c=( \${=_kumo_opt[$kpath]-} ); compadd -- \${(M)c:#\${cur}*}; return; fi
  if (( n == 0 )) && [[ -n \${_kumo_sub[$kpath]-} ]]; then c=( \${=_kumo_sub[$kpath]} ); compadd -- \${(M)c:#\${cur}*}; return; fi
  specs=( \${=_kumo_arg[$kpath]-} )
  spec=\${specs[n+1]-}
  if [[ -z $spec && \${#specs} -gt 0 && \${specs[-1]} == *... ]]; then spec=\${specs[-1]}; fi
  if [[ -n $spec ]]; then _kumo_words "\${spec%...}" "$cur" "\${words[1]}"; fi
}`,
    '_kumo "$@"',
    '',
  ].join('\n');
}
