/**
 * Staged, seen from the operator's side: real loop-image drives, the real agent, a real Azurite.
 * /metrics is scraped while a drive imports; the web console runs in Debian's chromium (driven
 * by playwright-core), watches another import's bar reach 100 %, and acts on a held drive and a
 * finished job through its buttons. Screenshots go to test-artifacts/.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DockedDrive } from "../../src/drives/door.js";
import type { JobSpec } from "../../src/lifecycle/machine.js";
import type { JobKey } from "../../src/lifecycle/model.js";
import { OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { artifactPath, CHROMIUM, CHROMIUM_ARGS, chromiumGate } from "../support/chromium.js";
import { UNTIL_HANG } from "../support/deadline.js";
import { returnAddress } from "../support/jobs.js";
import { parseExposition, type Sample, sampleValue } from "../support/prometheus.js";
import { attach, detach, loopDrives, preparedDrive, stagedDeadlines, stagedGate } from "./loop-images.js";

const RUN = stagedGate("console");
stagedDeadlines();
const BROWSER = RUN && chromiumGate("console");
const SUB = "sub-console";
const RG = "rg-dock";
const key = (name: string): JobKey => ({ subscriptionId: SUB, resourceGroup: RG, name });
const actor = { name: "test", type: "User" as const };

let root: string;
let images: string;
let station: TestAgent;
let storage: TestAzurite;
const devices: string[] = [];
const entry: Record<string, { driveId: string; manifestFile: string; manifestHash: string }> = {};
const img: Record<string, string> = {};

function plugIn(image: string): void {
  const dest = join(images, image.split("/").pop()!);
  renameSync(image, dest);
  renameSync(`${image}.serial`, `${dest}.serial`);
  devices.push(attach(dest));
}

async function docked(serial: string, statuses: string[], timeoutMs = 120_000): Promise<DockedDrive> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const d = station.agent.dock!.list().find((x) => x.serial === serial);
    if (d && statuses.includes(d.status)) return d;
    if (Date.now() > end)
      throw new Error(
        `drive ${serial}: still ${d?.status ?? "not seen"} after ${timeoutMs} ms (${d?.message})`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

function spec(drive: JobSpec["driveList"][number]): JobSpec {
  return {
    location: "West US",
    type: "Import",
    storageAccountId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
    returnAddress,
    driveList: [drive],
  };
}

async function shippingJob(name: string): Promise<void> {
  await station.agent.service.create(key(name), spec(entry[name]!), actor);
  await station.agent.service.update(
    key(name),
    { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: `1Z-${name}` } },
    actor,
  );
}

async function scrape(): Promise<Sample[]> {
  const res = await fetch(`${station.agent.url}/metrics`, {
    headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
  });
  expect(res.status).toBe(200);
  return parseExposition(await res.text()).samples; // throws on anything not in the exposition format
}

/** A drive with one big file and two small ones, plus the `<image>.serial` staging sidecar. */
async function importDrive(name: string, serial: string, bigMiB: number): Promise<void> {
  img[name] = join(root, "shelf", `${name}.img`);
  entry[name] = await preparedDrive({
    image: img[name]!,
    fs: "ext4",
    sizeMiB: bigMiB + 40,
    driveId: serial,
    accountKey: ACCOUNT_KEY,
    workDir: root,
    sessions: [
      {
        files: {
          "big.bin": randomBytes(bigMiB * 1024 * 1024),
          "notes.txt": Buffer.from(`drive ${serial}\n`),
          "sub/small.bin": randomBytes(70_000),
        },
        dest: `${name}/`,
      },
    ],
  });
  writeFileSync(`${img[name]}.serial`, serial);
}

describe.skipIf(!RUN)("staged: the operator's console and metrics", () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-console-"));
    images = join(root, "plugged");
    mkdirSync(images);
    mkdirSync(join(root, "shelf"));
    storage = await startTestAzurite(join(root, "azurite"));
    await importDrive("metered", "WD-METRICS-0001", 96);
    await importDrive("watched", "WD-CONSOLE-0001", 160);
    await importDrive("held", "ST-HELD-0001", 1);
    station = await startTestAgent(join(root, "data"), {
      drives: loopDrives(images, root),
      storageEndpoint: storage.template,
      transfer: { concurrency: 2, blobConcurrency: 2 },
    });
  });

  afterAll(async () => {
    await station?.agent.stop();
    for (const d of devices) detach(d);
    await storage?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("metrics scraped during an import: the byte counter rises to the drive's size; blobs, drive states, duration", async () => {
    await shippingJob("metered");
    const labels = { job: "metered", drive: "WD-METRICS-0001" };
    plugIn(img.metered!);
    const seen: number[] = [];
    let d: DockedDrive | undefined;
    for (const end = Date.now() + 180_000; Date.now() < end; ) {
      const samples = await scrape();
      const bytes = sampleValue(samples, "drive_station_transfer_bytes_total", labels);
      if (bytes !== undefined && bytes !== seen.at(-1)) seen.push(bytes);
      d = station.agent.dock!.list().find((x) => x.serial === "WD-METRICS-0001");
      if (d && ["done", "failed", "error"].includes(d.status)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(d?.status, d?.message).toBe("done");
    const size = 96 * 1024 * 1024 + "drive WD-METRICS-0001\n".length + 70_000;
    expect(d!.progress!.bytesTotal).toBe(size);

    const samples = await scrape();
    expect(sampleValue(samples, "drive_station_transfer_bytes_total", labels)).toBe(size);
    seen.push(size);
    expect(
      seen.some((b) => b > 0 && b < size),
      `values seen: ${seen.join(", ")}`,
    ).toBe(true);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen); // a counter never goes down
    expect(sampleValue(samples, "drive_station_transfer_blobs_total", labels)).toBe(3);
    expect(sampleValue(samples, "drive_station_transfer_errors_total", labels) ?? 0).toBe(0);
    expect(sampleValue(samples, "drive_station_attached_drives", { status: "done" })).toBe(1);
    expect(
      sampleValue(samples, "drive_station_drive_transfer_duration_seconds_count", { outcome: "Completed" }),
    ).toBe(1);
    expect(sampleValue(samples, "drive_station_transfer_queue_depth", { state: "in_flight" })).toBe(0);
    // The job's drive is Completed and the job Packaging, as the store says.
    // The feed re-reads jobs on its next tick: wait for it, however late it comes.
    await expect
      .poll(async () => {
        const after = await scrape();
        return [
          sampleValue(after, "drive_station_drives", { state: "Completed" }),
          sampleValue(after, "drive_station_jobs", { state: "Packaging" }),
        ];
      }, UNTIL_HANG)
      .toEqual([1, 1]);
  });

  describe.skipIf(!BROWSER)("in chromium", () => {
    let browser: Browser;
    let page: Page;
    const pageErrors: string[] = [];

    beforeAll(async () => {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
      page.on("pageerror", (e) => pageErrors.push(e.message));
      page.on("console", (m) => {
        // The browser logs every 4xx response it fetched; the tests provoke those on purpose.
        if (m.type() === "error" && !m.text().startsWith("Failed to load resource"))
          pageErrors.push(m.text());
      });
    });

    afterAll(async () => {
      await browser?.close();
    });

    const jobCard = (name: string) => page.locator(`article.job[data-job="${name}"]`);
    const jobStateIs = (name: string, state: string) =>
      page.locator(`article.job[data-job="${name}"][data-state="${state}"]`).waitFor({ timeout: 20_000 });
    async function act(job: string, action: string, fields: Record<string, string> = {}): Promise<void> {
      await jobCard(job).locator(`button[data-action="${action}"]`).click();
      for (const [name, value] of Object.entries(fields))
        await page.fill(`#action-fields [name="${name}"]`, value);
      await page.click("#action-submit");
      await page.locator("#action-dialog").waitFor({ state: "hidden" });
    }

    it("signs in with the operator token (a wrong one is refused, nothing goes into the URL)", async () => {
      await page.goto(`${station.agent.url}/console`);
      await page.fill("#token", "not-the-token");
      await page.click("#login-form button[type=submit]");
      await page.locator("#login-error", { hasText: "not valid" }).waitFor();
      await page.fill("#token", OPERATOR_TOKEN);
      await page.click("#login-form button[type=submit]");
      await page.locator("#live-text", { hasText: "Live" }).waitFor();
      expect(page.url()).toBe(`${station.agent.url}/console`);
      expect(await page.evaluate(() => sessionStorage.length)).toBe(1);
      await page.evaluate(() => {
        (window as unknown as { notReloaded: boolean }).notReloaded = true;
      });
      // The drive imported by the metrics test is listed, finished, with its job.
      await page.locator('tr[data-drive="WD-METRICS-0001"][data-status="done"]').waitFor();
    });

    it("watches an import's bar reach 100 %, pushed live (no reload)", async () => {
      await shippingJob("watched");
      plugIn(img.watched!);
      const bar = page.locator('tr[data-drive="WD-CONSOLE-0001"] [role="progressbar"]');
      const values: number[] = [];
      let midShot = false;
      for (const end = Date.now() + 180_000; Date.now() < end; ) {
        const v = Number((await bar.getAttribute("aria-valuenow", { timeout: 60_000 })) ?? -1);
        if (v !== values.at(-1)) values.push(v);
        // Mid-transfer, once the first speed sample is in: the screenshot shows speed and ETA.
        const speed = await page.locator('tr[data-drive="WD-CONSOLE-0001"] td.num').first().textContent();
        if (!midShot && v > 5 && v < 90 && speed !== "—") {
          midShot = true;
          await page.screenshot({ path: artifactPath("console-transferring.png"), fullPage: true });
        }
        if (v === 100) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(values.at(-1), `bar values: ${values.join(", ")}`).toBe(100);
      expect(
        values.some((v) => v < 100),
        `bar values: ${values.join(", ")}`,
      ).toBe(true);
      expect([...values].sort((a, b) => a - b)).toEqual(values);
      await page.locator('tr[data-drive="WD-CONSOLE-0001"][data-status="done"]').waitFor({ timeout: 30_000 });
      await jobStateIs("watched", "Packaging");
      expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(
        true,
      );
    });

    it("a held drive: its notice shows the next step; the operator checks the package in once the job ships", async () => {
      await station.agent.service.create(key("held"), spec(entry.held!), actor); // Creating: not shipped
      plugIn(img.held!);
      await docked("ST-HELD-0001", ["held"]);
      await page.locator('tr[data-drive="ST-HELD-0001"][data-status="held"]').waitFor();
      const notice = page.locator('#notices article.notice[data-code="PackageHeld"]');
      await notice.waitFor();
      expect(await notice.textContent()).toContain("Next step: Contact the customer");
      await page.screenshot({ path: artifactPath("console.png"), fullPage: true });
      // A Creating job cannot be faulted (JOB_TRANSITIONS): the console does not offer it.
      expect(await jobCard("held").locator('button[data-action="fault"]').count()).toBe(0);

      // The customer ships the job after the call; the operator checks the held package in.
      await station.agent.service.update(
        key("held"),
        { state: "Shipping", deliveryPackage: { carrierName: "DHL", trackingNumber: "JD0001" } },
        actor,
      );
      await jobStateIs("held", "Shipping");
      await jobCard("held").locator('button[data-action="checkIn"]').click();
      expect(await page.inputValue('#action-fields [name="driveIds"]')).toBe("ST-HELD-0001");
      expect(await page.inputValue('#action-fields [name="trackingNumber"]')).toBe("JD0001");
      await page.click("#action-submit");
      // Checked in, the plugged drive is re-examined at once and may already be importing, so
      // the job can be past Received by the time the page shows it.
      const pastCheckIn = ["Received", "Transferring", "Packaging"];
      await page
        .locator(pastCheckIn.map((s) => `article.job[data-job="held"][data-state="${s}"]`).join(", "))
        .first()
        .waitFor({ timeout: 20_000 });
      const held = await station.agent.service.get(key("held"));
      expect(pastCheckIn).toContain(held.state);
      expect(["Received", "Transferring", "Completed"]).toContain(held.drives[0]!.state);
      // Handled: the notice leaves "Needs attention".
      await notice.waitFor({ state: "detached" });
    });

    it("fault and resolve a job, ship a finished one back; a refused action shows the station's error", async () => {
      // The seed case: a return address that bounced while Packaging → contact the customer.
      await act("watched", "fault", { reason: "Return address bounced" });
      await jobStateIs("watched", "Faulted");
      expect((await station.agent.service.get(key("watched"))).faulted?.reason).toBe(
        "Return address bounced",
      );
      await page.locator('#notices article.notice[data-code="Faulted"]').waitFor();
      await act("watched", "resolve");
      await jobStateIs("watched", "Packaging");
      expect((await station.agent.service.get(key("watched"))).state).toBe("Packaging");
      await page.locator('#notices article.notice[data-code="Faulted"]').waitFor({ state: "detached" });

      await jobCard("metered").locator('button[data-action="shipBack"]').click();
      await page.click("#action-submit"); // empty required fields: the browser keeps the dialog open
      expect(await page.locator("#action-dialog").isVisible()).toBe(true);
      await page.fill('#action-fields [name="carrierName"]', "FedEx");
      await page.fill('#action-fields [name="trackingNumber"]', "1Z-RETURN-0001");
      await page.click("#action-submit");
      await jobStateIs("metered", "Completed");
      expect((await station.agent.service.get(key("metered"))).returnPackage?.trackingNumber).toBe(
        "1Z-RETURN-0001",
      );

      // A fault the station refuses (a drive ID it does not know) is shown, not swallowed.
      await jobCard("watched").locator('button[data-action="fault"]').click();
      await page.fill('#action-fields [name="reason"]', "x");
      await page.evaluate(() => {
        const select = document.querySelector<HTMLSelectElement>('#action-fields [name="driveId"]')!;
        select.add(new Option("NOT-A-DRIVE", "NOT-A-DRIVE"));
        select.value = "NOT-A-DRIVE";
      });
      await page.click("#action-submit");
      await page.locator("#action-error", { hasText: "NOT-A-DRIVE" }).waitFor();
      await page.click("#action-cancel");
      expect((await station.agent.service.get(key("watched"))).state).toBe("Packaging");

      await page.screenshot({ path: artifactPath("console-after-actions.png"), fullPage: true });
      expect(pageErrors).toEqual([]);
    });
  });
});
