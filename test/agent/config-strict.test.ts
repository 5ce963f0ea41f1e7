/** Config that forgives nothing silently: an unknown or misspelt key anywhere stops the agent. */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config.js";
import { editDistance, nearest } from "../../agent/config-keys.js";
import { stationLocation } from "../support/agent.js";
import { built } from "../support/built.js";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "ds-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = () => ({ station: { location: { ...stationLocation } } });
type Obj = Record<string, unknown>;

/** Every plain object in a parsed config, with its dotted path ("" is the root). */
function objects(value: unknown, path: string[] = []): { path: string[]; obj: Obj }[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => objects(v, [...path, String(i)]));
  if (typeof value !== "object" || value === null) return [];
  return [
    { path, obj: value as Obj },
    ...Object.entries(value).flatMap(([k, v]) => objects(v, [...path, k])),
  ];
}
const at = (root: Obj, path: string[]): Obj => path.reduce((o, k) => o[k] as Obj, root);

/** A full config: the default file with every optional object filled in (whatever the schema is now). */
function fullConfig(): Obj {
  const raw = JSON.parse(readFileSync(join(process.cwd(), "config", "default.json"), "utf8")) as Obj;
  const parsed = parseConfig(raw, "default.json") as unknown as Obj;
  const full = structuredClone(parsed);
  (at(full, ["api"]) as Obj).tokens = [{ name: "op", token: "operator-token-0123456789", role: "operator" }];
  (at(full, ["api"]) as Obj).tls = { certFile: "c.pem", keyFile: "k.pem" };
  return full;
}

describe("strict config", () => {
  it("suggests the nearest key by edit distance", () => {
    expect(editDistance("prot", "port")).toBe(2);
    expect(editDistance("intervalSecond", "intervalSeconds")).toBe(1);
    expect(nearest("prot", ["host", "port", "tls"])).toBe("port");
    expect(nearest("LoopImageDir", ["loopImageDirs", "mountRoot"])).toBe("loopImageDirs");
    expect(nearest("completelyelse", ["port", "host"])).toBeUndefined();
  });

  it("a key named like an Object.prototype member is an unknown key, not a crash", () => {
    for (const k of ["constructor", "toString", "__lookupGetter__", "hasOwnProperty"]) {
      expect(() => parseConfig({ ...base(), api: JSON.parse(`{"${k}": 1}`) }, "x.json"), k).toThrow(
        new RegExp(`^Config x\\.json: unknown key api\\.${k}`),
      );
    }
  });

  it("stops on a misspelt key, naming it and the nearest known key", () => {
    expect(() => parseConfig({ ...base(), api: { prot: 8080 } }, "x.json")).toThrow(
      /Config x\.json: unknown key api\.prot; did you mean api\.port\?/,
    );
    expect(() => parseConfig({ ...base(), drives: { loopImageDir: ["/srv"] } }, "x.json")).toThrow(
      /unknown key drives\.loopImageDir; did you mean drives\.loopImageDirs\?/,
    );
    expect(() =>
      parseConfig({ ...base(), storage: { mode: "azure", endpointTemplat: "x" } }, "x.json"),
    ).toThrow(/unknown key storage\.endpointTemplat; did you mean storage\.endpointTemplate\?/);
    // The embedded branch of the storage union has no endpointTemplate: still unknown there.
    expect(() =>
      parseConfig({ ...base(), storage: { mode: "embedded", endpointTemplate: "x" } }, "x.json"),
    ).toThrow(/unknown key storage\.endpointTemplate/);
    expect(() =>
      parseConfig(
        { ...base(), api: { tokens: [{ name: "a", token: "0123456789abcdef01", rol: "operator" }] } },
        "x.json",
      ),
    ).toThrow(/unknown key api\.tokens\.0\.rol; did you mean api\.tokens\.0\.role\?/);
    expect(() => parseConfig({ ...base(), zzz: 1 }, "x.json")).toThrow(
      /unknown key zzz \(known here: dataDir, /,
    );
  });

  it("catches a stray key in every object of the schema, and a misspelling of every key", () => {
    const full = fullConfig();
    expect(() => parseConfig(full, "full.json")).not.toThrow();
    const places = objects(full);
    expect(places.length).toBeGreaterThan(8);
    for (const { path } of places) {
      const stray = structuredClone(full);
      at(stray, path).notAKey = 1;
      expect(() => parseConfig(stray, "full.json"), `stray key at ${path.join(".")}`).toThrow(
        `unknown key ${[...path, "notAKey"].join(".")}`,
      );
      for (const key of Object.keys(at(full, path))) {
        const typo = structuredClone(full);
        const obj = at(typo, path);
        obj[`${key}x`] = obj[key];
        delete obj[key];
        expect(() => parseConfig(typo, "full.json"), `typo of ${[...path, key].join(".")}`).toThrow(
          `did you mean ${[...path, key].join(".")}?`,
        );
      }
    }
  });

  it("the agent exits 78 naming the key and the nearest one", async () => {
    const file = join(dir, "typo.json");
    writeFileSync(file, JSON.stringify({ ...base(), timers: { intervalSecond: 5 } }));
    const err = (await run(process.execPath, [built("agent/main.js"), "--config", file]).catch((e) => e)) as {
      code: number;
      stderr: string;
    };
    expect(err.code).toBe(78);
    expect(err.stderr).toContain("unknown key timers.intervalSecond; did you mean timers.intervalSeconds?");
    expect(err.stderr.trim().split("\n")).toHaveLength(1);
  });
});
