/**
 * Staged, in Debian's chromium: two real loop-image drives import at once into a real Azurite
 * while the console is open. Each drive's row draws its throughput sparkline next to speed and
 * ETA, the dock's heading the station's, all with data points; the job card's percentage is
 * never covered by its bar. The screenshot (test-artifacts/console-sparklines.png) is taken
 * mid-import.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobKey } from "../../src/lifecycle/model.js";
import { type CountingProxy, countingProxy } from "../../src/staging/counting-proxy.js";
import { OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { artifactPath, CHROMIUM, CHROMIUM_ARGS, chromiumGate } from "../support/chromium.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, loopDrives, preparedDrive, stagedGate } from "./loop-images.js";

const RUN = stagedGate("console sparklines") && chromiumGate("console sparklines");
const SUB = "sub-sparklines";
const RG = "rg";
const key = (name: string): JobKey => ({ subscriptionId: SUB, resourceGroup: RG, name });
const actor = { name: "test", type: "User" as const };
// Real serials are long (the second like a WD drive behind its USB bridge): the job card must still fit its percentage.
const SERIALS = ["WD-SPARK-0001", "WDC-WX12D71KXF3A-SPARK02"];

let root: string;
let station: TestAgent;
let storage: TestAzurite;
let proxy: CountingProxy;
let browser: Browser;
let page: Page;
const devices: string[] = [];
const images: string[] = [];

const row = (serial: string) => `tr[data-drive="${serial}"]`;
const pointsOf = async (selector: string) =>
  Number(
    (await page.locator(`${selector} svg.sparkline`).getAttribute("data-points", { timeout: 1000 })) ?? 0,
  );

describe.skipIf(!RUN)("staged: throughput sparklines in the console", () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-sparklines-"));
    mkdirSync(join(root, "plugged"));
    storage = await startTestAzurite(join(root, "azurite"));
    // Each block's answer held 250 ms, two requests at a time: the imports last ~25 s however fast
    // the machine is (they once ended before the sparklines held 8 samples).
    proxy = await countingProxy(storage.port, ACCOUNT, undefined, { answerDelayMs: 250 });
    station = await startTestAgent(join(root, "data"), {
      drives: loopDrives(join(root, "plugged"), root),
      storageEndpoint: `http://127.0.0.1:${proxy.port}/{account}`,
      // One request at a time per drive: the imports last long enough for several samples.
      transfer: { concurrency: 2, blobConcurrency: 1 },
    });
    for (const [i, serial] of SERIALS.entries()) {
      const image = join(root, `spark${i}.img`);
      const entry = await preparedDrive({
        image,
        fs: "ext4",
        sizeMiB: 430,
        driveId: serial,
        accountKey: ACCOUNT_KEY,
        workDir: root,
        sessions: [{ files: { "big.bin": randomBytes(384 * 1024 * 1024) }, dest: `spark${i}/` }],
      });
      writeFileSync(`${image}.serial`, serial);
      images.push(image);
      await station.agent.service.create(
        key(`spark${i}`),
        {
          location: "West US",
          type: "Import",
          storageAccountId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
          returnAddress,
          driveList: [entry],
        },
        actor,
      );
      await station.agent.service.update(
        key(`spark${i}`),
        { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: `1Z-S${i}` } },
        actor,
      );
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await station?.agent.stop();
    for (const d of devices) detach(d);
    await proxy?.close();
    await storage?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("each drive and the station draw a sparkline with data points beside speed and ETA; percentages stay readable", async () => {
    await page.goto(`${station.agent.url}/console`);
    await page.fill("#token", OPERATOR_TOKEN);
    await page.click("#login-form button[type=submit]");
    await page.locator("#live-text", { hasText: "Live" }).waitFor();
    for (const image of images) {
      const dest = join(root, "plugged", image.split("/").pop()!);
      renameSync(image, dest);
      renameSync(`${image}.serial`, `${dest}.serial`);
      devices.push(attach(dest));
    }
    // Wait (while both still transfer) until every sparkline holds at least 8 samples.
    let seen = "";
    for (const end = Date.now() + 240_000; ; ) {
      const statuses = await Promise.all(
        SERIALS.map((s) => page.locator(row(s)).getAttribute("data-status", { timeout: 60_000 })),
      );
      const points = await Promise.all([
        ...SERIALS.map((s) => pointsOf(row(s)).catch(() => 0)),
        pointsOf("#station-throughput").catch(() => 0),
      ]);
      seen = `statuses ${statuses.join(", ")}; points ${points.join(", ")}`;
      if (statuses.every((s) => s === "transferring") && points.every((p) => p >= 8)) break;
      if (
        statuses.some((s) => s !== "transferring" && s !== "ready" && s !== "identifying") ||
        Date.now() > end
      )
        throw new Error(`the sparklines did not fill while both drives transferred: ${seen}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await page.screenshot({ path: artifactPath("console-sparklines.png"), fullPage: true });

    for (const s of SERIALS) {
      const line = page.locator(`${row(s)} svg.sparkline polyline`);
      const coords = ((await line.getAttribute("points")) ?? "").trim().split(" ");
      expect(coords.length).toBeGreaterThanOrEqual(8);
      // Some bytes moved in the window: the line is not flat on the baseline.
      expect(coords.some((c) => Number(c.split(",")[1]) < 27)).toBe(true);
      // Next to the speed and ETA cells of the same row.
      const cells = await page.locator(`${row(s)} td`).allTextContents();
      expect(cells.at(-2)).toMatch(/\/s/);
      expect(cells.at(-1)).not.toBe("—");
      expect(await page.locator(`${row(s)} svg.sparkline`).isVisible()).toBe(true);
    }
    expect(await page.locator("#station-throughput").isVisible()).toBe(true);
    expect(await page.locator("#station-speed").textContent()).toMatch(/\/s$/);

    // Every job card's drive row: the percentage is visible and no part of the bar lies over it
    // (measured in one step: a jobs update may rebuild the cards between two separate reads).
    for (const [i, s] of SERIALS.entries()) {
      const sel = `article.job[data-job="spark${i}"] .job-drive[data-drive-id="${s}"]`;
      await page.locator(`${sel} .num`).waitFor();
      const m = await page.evaluate((sel) => {
        const drive = document.querySelector(sel)!;
        const bar = drive.querySelector("[role=progressbar]")!.getBoundingClientRect();
        const num = drive.querySelector(".num")!;
        const r = document.createRange();
        r.selectNodeContents(num); // the text itself, not its (wider) box
        const text = r.getBoundingClientRect();
        const box = num.getBoundingClientRect();
        const style = getComputedStyle(num);
        return {
          barRight: bar.right,
          textLeft: text.left,
          textRight: text.right,
          boxRight: box.right,
          text: num.textContent,
          shown: style.visibility !== "hidden" && style.display !== "none" && text.width > 0,
          // The topmost element at the text's centre is the text's own element.
          onTop:
            document.elementFromPoint((text.left + text.right) / 2, (text.top + text.bottom) / 2) === num,
        };
      }, sel);
      expect(m.text).toMatch(/^\d+ %$/);
      expect(m.shown, `${s}: ${JSON.stringify(m)}`).toBe(true);
      expect(m.barRight, `${s}: ${JSON.stringify(m)}`).toBeLessThanOrEqual(m.textLeft + 0.5);
      expect(m.textRight, `${s}: ${JSON.stringify(m)}`).toBeLessThanOrEqual(m.boxRight + 0.5);
      expect(m.onTop, `${s}: ${JSON.stringify(m)}`).toBe(true);
    }

    for (const image of images) {
      const name = image.split("/").pop()!;
      for (const end = Date.now() + 240_000; ; ) {
        const d = station.agent.dock!.list().find((x) => x.key.endsWith(`/${name}`));
        if (d && ["done", "failed", "error"].includes(d.status)) {
          expect(d.status, d.message).toBe("done");
          // The samples stay after the drive is done: the line shows how the copy went.
          expect(d.throughput?.values.length ?? 0).toBeGreaterThanOrEqual(4);
          break;
        }
        if (Date.now() > end) throw new Error(`${name} still ${d?.status}: ${d?.message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }, 600_000);
});
