/** The kinds of kumo names a shell completes from the store (`kumo __complete KIND PREFIX`). */
export const NAME_KINDS = ['instance', 'image', 'flavor', 'network', 'host', 'volume', 'share', 'lb', 'project', 'user'] as const;
export type NameKind = (typeof NAME_KINDS)[number];

export const isNameKind = (s: string): s is NameKind => (NAME_KINDS as readonly string[]).includes(s);
