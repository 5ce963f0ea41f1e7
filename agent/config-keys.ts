/**
 * Unknown config keys. zod drops keys a schema does not name, so a misspelt key (`"prot": 8080`)
 * would be ignored without a word. This walks the raw config alongside the schema, whatever
 * objects the schema holds (other modules add theirs), and reports the first key no schema object
 * names, with the nearest key that object does name.
 */
import type { z } from "zod";

export interface UnknownKey {
  /** Dotted path of the unknown key: `api.tls.certfile`, `api.tokens.0.rol`. */
  path: string;
  key: string;
  /** The closest known key of the same object, when one is close enough to be a typo. */
  suggestion?: string;
  known: string[];
}

interface Def {
  type: string;
  innerType?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  options?: z.ZodType[];
  discriminator?: string;
  in?: z.ZodType;
  valueType?: z.ZodType;
  getter?: () => z.ZodType;
  values?: unknown[];
}

const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Levenshtein distance (insert, delete, substitute: 1 each). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The candidate nearest to `word` (case-insensitive), if within a typo's reach. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (!best || d < best.d) best = { c, d };
  }
  if (!best) return undefined;
  const reach = Math.max(2, Math.ceil(Math.max(word.length, best.c.length) / 3));
  return best.d <= reach ? best.c : undefined;
}

export function findUnknownKey(
  schema: z.ZodType,
  value: unknown,
  path: string[] = [],
): UnknownKey | undefined {
  const def = defOf(schema);
  switch (def.type) {
    case "optional":
    case "default":
    case "prefault":
    case "nullable":
    case "readonly":
    case "catch":
    case "nonoptional":
      return def.innerType ? findUnknownKey(def.innerType, value, path) : undefined;
    case "pipe":
      return def.in ? findUnknownKey(def.in, value, path) : undefined;
    case "lazy":
      return def.getter ? findUnknownKey(def.getter(), value, path) : undefined;
    case "array":
      if (!Array.isArray(value) || !def.element) return undefined;
      for (const [i, item] of value.entries()) {
        const found = findUnknownKey(def.element, item, [...path, String(i)]);
        if (found) return found;
      }
      return undefined;
    case "record":
      if (!isPlainObject(value) || !def.valueType) return undefined;
      for (const [k, v] of Object.entries(value)) {
        const found = findUnknownKey(def.valueType, v, [...path, k]);
        if (found) return found;
      }
      return undefined;
    case "union":
      return unionUnknownKey(def, value, path);
    case "object": {
      if (!isPlainObject(value) || !def.shape) return undefined;
      const known = Object.keys(def.shape);
      for (const [k, v] of Object.entries(value)) {
        // Own keys only: a key named `constructor` or `__lookupGetter__` is unknown, not Object's.
        const field = Object.hasOwn(def.shape, k) ? def.shape[k] : undefined;
        if (!field) {
          const suggestion = nearest(k, known);
          return { path: [...path, k].join("."), key: k, known, ...(suggestion ? { suggestion } : {}) };
        }
        const found = findUnknownKey(field, v, [...path, k]);
        if (found) return found;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

/** A discriminated union checks the option its discriminator picks; a plain union, the best fit. */
function unionUnknownKey(def: Def, value: unknown, path: string[]): UnknownKey | undefined {
  const options = def.options ?? [];
  if (def.discriminator && isPlainObject(value)) {
    const tag = value[def.discriminator];
    const picked = options.find((o) => {
      const field = defOf(o).shape?.[def.discriminator!];
      return field ? (defOf(field).values ?? []).includes(tag) : false;
    });
    if (picked) return findUnknownKey(picked, value, path);
    // No option picked (a misspelt or missing tag): fall through to the best fit.
  }
  let first: UnknownKey | undefined;
  for (const o of options) {
    const found = findUnknownKey(o, value, path);
    if (!found) return undefined;
    first ??= found;
  }
  return first;
}
