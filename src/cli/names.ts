import { Argument, Option } from 'commander';
import type { NameKind } from '../model/name-kinds.js';

/**
 * Which kind of kumo name an argument or option takes, written next to its definition
 * (`.addArgument(named('instance', '<name>'))`): shell completion offers the live names of that
 * kind from the store (`kumo __complete KIND PREFIX`), and nothing else keeps a second table.
 * The kind is kept beside commander's own object, which has no field for it.
 */
const kinds = new WeakMap<Argument | Option, NameKind>();

/** An argument that takes the name of an existing `kind` (`<name>`, or `<names...>` for several). */
export function named(kind: NameKind, spec: string, description?: string): Argument {
  const a = new Argument(spec, description);
  kinds.set(a, kind);
  return a;
}

/** An option whose value is the name of an existing `kind` (chain .makeOptionMandatory(), .argParser() as usual). */
export function namedOption(kind: NameKind, flags: string, description: string): Option {
  const o = new Option(flags, description);
  kinds.set(o, kind);
  return o;
}

/** The kind of name an argument or option takes, if it takes one. */
export const nameKindOf = (x: Argument | Option): NameKind | undefined => kinds.get(x);
