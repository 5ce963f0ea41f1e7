/** Logs for people (pretty on a terminal) and for journald (JSON with the real syslog priority). */
import { spawn } from "node:child_process";
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { chooseLogFormat, createLogger, type LogFormat, syslogPriority } from "../../agent/logging.js";
import { stationLocation } from "../support/agent.js";
import { built } from "../support/built.js";
import { UNTIL_HANG } from "../support/deadline.js";

const dir = mkdtempSync(join(tmpdir(), "ds-log-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(format: LogFormat) {
  const lines: string[] = [];
  const log = createLogger({ level: "trace", format, sink: { write: (s: string) => void lines.push(s) } });
  return { log, lines };
}

const SECRET_KEY = "c2VjcmV0LWFjY291bnQta2V5LXZhbHVlLTEyMzQ1Njc4OTA=";
const SAS = "sv=2022-11-02&sig=SuperSecretSignatureValue123";
const TOKEN = "op-token-abcdefghijklmnop";

function logSecrets(log: ReturnType<typeof capture>["log"]) {
  log.info({ accountKey: SECRET_KEY, drive: { sas: SAS } }, "drive credential loaded");
  log.warn(`upload failed for https://a.blob.core.windows.net/c/b?${SAS} with Bearer ${TOKEN}`);
  log.error({ err: new Error(`AccountKey=${SECRET_KEY};EndpointSuffix=x`) }, "storage refused");
}

describe("log format", () => {
  it("picks journal only when stdout is the stream systemd connected to the journal", () => {
    const id = { dev: 64769, ino: 123456 };
    expect(
      chooseLogFormat({ env: { JOURNAL_STREAM: "64769:123456" }, stdoutIsTTY: false, stdoutId: id }),
    ).toBe("journal");
    // stdout redirected elsewhere by a wrapper: plain JSON, no priority prefix
    expect(chooseLogFormat({ env: { JOURNAL_STREAM: "64769:999" }, stdoutIsTTY: false, stdoutId: id })).toBe(
      "json",
    );
    expect(chooseLogFormat({ env: {}, stdoutIsTTY: true, stdoutId: id })).toBe("pretty");
    expect(chooseLogFormat({ env: {}, stdoutIsTTY: false, stdoutId: id })).toBe("json");
  });

  it("maps pino levels to syslog priorities", () => {
    expect([60, 50, 40, 30, 20, 10].map(syslogPriority)).toEqual([2, 3, 4, 6, 7, 7]);
  });

  it("journal: each JSON line carries its <N> priority prefix", () => {
    const { log, lines } = capture("journal");
    log.fatal("f");
    log.error("e");
    log.warn("w");
    log.info("i");
    log.debug("d");
    log.trace("t");
    expect(lines.map((l) => l.slice(0, 3))).toEqual(["<2>", "<3>", "<4>", "<6>", "<7>", "<7>"]);
    for (const l of lines) expect(JSON.parse(l.slice(3)).service).toBe("drive-station");
  });

  it("pretty: level names and messages, not numeric levels", () => {
    const { log, lines } = capture("pretty");
    log.warn({ job: "s/rg/job1" }, "drive held");
    log.info("agent ready");
    const text = lines.join("");
    expect(text).toMatch(/WARN.*drive held/);
    expect(text).toMatch(/INFO.*agent ready/);
    expect(text).toContain("s/rg/job1");
    expect(text).not.toContain('"level"');
  });

  it.each(["pretty", "journal", "json"] as const)("%s: secrets are redacted and scrubbed", (format) => {
    const { log, lines } = capture(format);
    logSecrets(log);
    const text = lines.join("");
    expect(lines).toHaveLength(3);
    expect(text).toContain("storage refused");
    for (const secret of [SECRET_KEY, "SuperSecretSignatureValue123", TOKEN])
      expect(text).not.toContain(secret);
    expect(text).toContain("[redacted]");
  });

  it("the agent under systemd (JOURNAL_STREAM = its stdout) writes prefixed JSON lines", async () => {
    const config = join(dir, "config.json");
    writeFileSync(
      config,
      JSON.stringify({
        dataDir: join(dir, "data"),
        api: { port: 0, tokens: [{ name: "op", token: "operator-token-0123456789", role: "operator" }] },
        station: { location: stationLocation },
        storage: { mode: "azure", endpointTemplate: "http://127.0.0.1:9/{account}" },
        drives: { enabled: false },
      }),
    );
    const out = join(dir, "journal.out");
    const fd = openSync(out, "w");
    const { dev, ino } = fstatSync(fd);
    const child = spawn(process.execPath, [built("agent/main.js"), "--config", config], {
      stdio: ["ignore", fd, "pipe"],
      env: { ...process.env, JOURNAL_STREAM: `${dev}:${ino}` },
    });
    closeSync(fd);
    const deadline = Date.now() + UNTIL_HANG.timeout;
    while (!readFileSync(out, "utf8").includes("drive-station agent ready") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    const logLines = readFileSync(out, "utf8")
      .split("\n")
      .filter((l) => l.startsWith("<") || l.startsWith("{"));
    expect(logLines.length).toBeGreaterThan(1);
    for (const l of logLines) expect(l).toMatch(/^<[2-7]>\{/);
    expect(logLines.some((l) => l.startsWith("<6>") && l.includes("drive-station agent ready"))).toBe(true);
  });
});
