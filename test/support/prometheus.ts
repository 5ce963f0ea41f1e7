/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4): every line must be
 * a comment (# HELP / # TYPE), blank, or `name{labels} value [timestamp]`, and every sample must
 * belong to a family declared by # TYPE. Throws naming the line on anything else.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;

export function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${line}`;
    if (line === "") return;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (!m || !NAME.test(m[2]!)) throw new Error(`bad comment, ${where}`);
      if (m[1] === "TYPE") {
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(m[3] ?? ""))
          throw new Error(`bad type, ${where}`);
        types.set(m[2]!, m[3]!);
      }
      return;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`bad sample, ${where}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < m[3].length) {
        const l = LABEL.exec(m[3]);
        if (!l) throw new Error(`bad labels, ${where}`);
        labels[l[1]!] = l[2]!.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
      }
    }
    const raw = m[4]!;
    // As Prometheus reads values (Go's ParseFloat): NaN and Inf in any letter case.
    const special: Record<string, number> = { "+inf": Infinity, inf: Infinity, "-inf": -Infinity, nan: NaN };
    const value = special[raw.toLowerCase()] ?? Number(raw);
    if (Number.isNaN(value) && raw.toLowerCase() !== "nan") throw new Error(`bad value, ${where}`);
    const name = m[1]!;
    const family = [name, name.replace(/_(bucket|sum|count|total|created)$/, "")].find((n) => types.has(n));
    if (!family) throw new Error(`sample without a # TYPE, ${where}`);
    samples.push({ name, labels, value });
  });
  return { types, samples };
}

/** The value of one sample, or undefined. */
export function sampleValue(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    ?.value;
}
