// drive-station operator console. Plain ES module, no build step.
// The operator token lives in sessionStorage and goes out only as an Authorization header; the
// push stream is read with fetch() (EventSource cannot send headers), so no token is in any URL.

import { ACTION_LABEL, actionsFor, openAction } from "./actions.js";
import { $, ago, bar, bytes, duration, h, pill } from "./dom.js";
import { renderNotices } from "./notices.js";
import { jobOf, session, state } from "./session.js";
import { sparkline } from "./sparkline.js";

let streamAbort;

// ------------------------------------------------------------------ push stream (fetch + SSE framing)

async function stream() {
  streamAbort?.abort();
  const abort = new AbortController();
  streamAbort = abort;
  let delay = 1000;
  while (!abort.signal.aborted) {
    try {
      const res = await fetch("/station/v1/events", {
        headers: { authorization: `Bearer ${session.token}`, accept: "text/event-stream" },
        signal: abort.signal,
        cache: "no-store",
      });
      if (res.status === 401 || res.status === 403) {
        const data = await res.json().catch(() => ({}));
        return signOut(data?.error?.message ?? "The token was refused: sign in again.");
      }
      if (!res.ok || !res.body) throw new Error(`${res.status}`);
      live(true);
      delay = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
          onBlock(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch {
      if (abort.signal.aborted) return;
    }
    live(false);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

function onBlock(block) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) type = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (!data.length || !(type in state)) return;
  state[type] = JSON.parse(data.join("\n"));
  if (type === "station") return renderStation();
  if (type === "drives") {
    renderDrives();
    liveJobBars();
  }
  if (type === "jobs") {
    renderJobs();
    renderDrives();
  }
  renderNotices();
}

function live(on) {
  $("live").hidden = false;
  $("live").classList.toggle("off", !on);
  $("live-text").textContent = on ? "Live" : "Reconnecting…";
}

// ------------------------------------------------------------------ drives at the dock

const DRIVE_STATUS_KIND = {
  transferring: "active",
  ready: "active",
  identifying: "pending",
  paused: "warn",
  held: "warn",
  extra: "warn",
  unknown: "warn",
  failed: "error",
  error: "error",
  done: "ok",
  processed: "ok",
  conflict: "error",
};

function renderDrives() {
  const rows = state.drives.map((d) => {
    const p = d.progress;
    const moving = d.status === "transferring" && p;
    const entry = jobOf(d.job)?.drives.find((x) => x.driveId === d.driveId);
    const total = p?.bytesTotal ?? entry?.bytesTotal;
    const done = p?.bytesSucceeded ?? entry?.bytesSucceeded ?? 0;
    const percent = total ? (done / total) * 100 : d.status === "done" ? 100 : 0;
    const label = d.status === "done" && entry ? `${entry.state}` : d.status;
    return h(
      "tr",
      { "data-drive": d.driveId ?? d.serial ?? d.key, "data-status": d.status },
      h(
        "td",
        {},
        h("div", { class: "mono strong" }, d.serial ?? "no serial"),
        h("div", { class: "sub muted" }, d.device, d.fsType ? ` · ${d.fsType}` : ""),
      ),
      h(
        "td",
        {},
        d.job ? h("div", { class: "strong" }, d.job.name) : h("span", { class: "muted" }, "—"),
        d.driveId ? h("div", { class: "sub muted mono" }, d.driveId) : null,
      ),
      h(
        "td",
        {},
        pill(label, DRIVE_STATUS_KIND[d.status] ?? "pending"),
        h("div", { class: "sub muted message", title: d.message }, d.message),
      ),
      h(
        "td",
        { class: "progress-col" },
        total || d.status === "done"
          ? bar(percent, DRIVE_STATUS_KIND[d.status])
          : h("span", { class: "muted" }, "—"),
        total
          ? h("div", { class: "sub muted" }, `${Math.floor(percent)} % · ${bytes(done)} of ${bytes(total)}`)
          : null,
      ),
      h(
        "td",
        { class: "num speed-col" },
        h("div", {}, moving && p.bytesPerSecond > 0 ? `${bytes(p.bytesPerSecond)}/s` : "—"),
        sparkline(d.throughput, { label: `Drive ${d.driveId ?? d.serial ?? d.device} throughput` }),
      ),
      h("td", { class: "num" }, moving && p.etaSeconds !== undefined ? duration(p.etaSeconds) : "—"),
    );
  });
  $("drives").replaceChildren(...rows);
  $("drives-empty").hidden = rows.length > 0;
  $("drives-count").textContent = rows.length ? String(rows.length) : "";
}

/** The station's throughput (its drives summed) beside the dock's heading. */
function renderStation() {
  const t = state.station?.throughput;
  const line = sparkline(t, { width: 160, label: "Station throughput" });
  $("station-throughput").hidden = !line;
  $("station-sparkline").replaceChildren(...(line ? [line] : []));
  const now = t?.values?.at(-1);
  $("station-speed").textContent = now !== undefined ? `${bytes(now)}/s` : "";
}

// ------------------------------------------------------------------ jobs

const JOB_STATE_KIND = {
  Creating: "pending",
  Shipping: "pending",
  Received: "active",
  Transferring: "active",
  Packaging: "active",
  Completed: "ok",
  Closed: "warn",
  Faulted: "error",
};
const DRIVE_STATE_KIND = {
  Specified: "pending",
  Received: "active",
  NeverReceived: "warn",
  Transferring: "active",
  Completed: "ok",
  CompletedMoreInfo: "warn",
  ShippedBack: "ok",
  Faulted: "error",
};

/** A transferring drive's percentage from the dock (live), not the store (saved every few seconds). */
function livePercent(j, d) {
  if (d.state !== "Transferring") return undefined;
  const p = state.drives.find((x) => x.driveId === d.driveId && x.job?.name === j.name)?.progress;
  return p?.bytesTotal ? Math.floor((p.bytesSucceeded / p.bytesTotal) * 100) : undefined;
}

/** Moves the job cards' bars in place, so their buttons are not rebuilt under the operator's click. */
function liveJobBars() {
  for (const j of state.jobs) {
    let total = 0;
    let done = 0;
    let live = false;
    for (const d of j.drives) {
      const p =
        d.state === "Transferring" &&
        state.drives.find((x) => x.driveId === d.driveId && x.job?.name === j.name)?.progress;
      if (p?.bytesTotal) live = true;
      total += p?.bytesTotal ?? d.bytesTotal ?? 0;
      done += p?.bytesTotal ? p.bytesSucceeded : d.bytesTotal !== undefined ? d.bytesSucceeded : 0;
    }
    const card = document.querySelector(`article.job[data-job="${CSS.escape(j.name)}"]`);
    if (live && total && card)
      card.querySelector(".job-percent").textContent = `${Math.floor((done / total) * 100)} %`;
    for (const d of j.drives) {
      const percent = livePercent(j, d);
      if (percent === undefined) continue;
      const row = document.querySelector(
        `article.job[data-job="${CSS.escape(j.name)}"] .job-drive[data-drive-id="${CSS.escape(d.driveId)}"]`,
      );
      if (!row) continue;
      row.querySelector(".bar-fill").style.width = `${percent}%`;
      row.querySelector("[role=progressbar]").setAttribute("aria-valuenow", String(percent));
      row.querySelector(".num").textContent = `${percent} %`;
    }
  }
}

function renderJobs() {
  const cards = state.jobs.map((j) => {
    const drives = j.drives.map((d) => {
      const percent = livePercent(j, d) ?? d.percentComplete;
      const detail =
        d.copyStatus && d.copyStatus !== d.state && d.copyStatus !== "InProgress" ? d.copyStatus : "";
      return h(
        "div",
        { class: "job-drive", "data-drive-id": d.driveId },
        h("span", { class: "mono" }, d.driveId),
        pill(d.state, DRIVE_STATE_KIND[d.state]),
        bar(percent, DRIVE_STATE_KIND[d.state]),
        h("span", { class: "sub muted num" }, `${percent} %`),
        detail ? h("span", { class: "sub job-drive-detail" }, `Copy status: ${detail}`) : null,
        d.repairHint ? h("span", { class: "sub job-drive-hint mono" }, d.repairHint) : null,
      );
    });
    const held = j.heldPackages.map((p) =>
      h(
        "div",
        { class: "job-note warn" },
        `Held package ${p.trackingNumber}: ${p.driveIds.join(", ") || "no drives"} · since ${ago(p.heldAt)}`,
      ),
    );
    const extra = j.extraDrives.map((e) =>
      h(
        "div",
        { class: "job-note" },
        `Extra drive ${e.driveId}${e.shippedBack ? " · shipped back" : " · goes back with the job"}`,
      ),
    );
    const fault = j.faulted
      ? h("div", { class: "job-note error" }, `Faulted from ${j.faulted.from}: ${j.faulted.reason}`)
      : null;
    return h(
      "article",
      { class: "card job", "data-job": j.name, "data-state": j.state },
      h(
        "header",
        { class: "job-head" },
        h(
          "div",
          {},
          h("h3", {}, j.name),
          h(
            "div",
            { class: "sub muted" },
            `${j.type} · ${j.subscriptionId} / ${j.resourceGroup}`,
            j.deliveryPackage
              ? ` · ${j.deliveryPackage.carrierName} ${j.deliveryPackage.trackingNumber}`
              : "",
          ),
        ),
        h(
          "div",
          { class: "job-state" },
          pill(j.state, JOB_STATE_KIND[j.state]),
          j.cancelRequested ? pill("cancelled", "warn") : null,
          h("span", { class: "num strong job-percent" }, `${j.percentComplete} %`),
        ),
      ),
      drives.length
        ? h("div", { class: "job-drives" }, drives)
        : h("p", { class: "muted sub" }, "No drives listed."),
      fault,
      held,
      extra,
      h(
        "div",
        { class: "job-actions" },
        actionsFor(j).map((a) =>
          h(
            "button",
            { class: "btn small", type: "button", "data-action": a, onclick: () => openAction(a, j) },
            ACTION_LABEL[a],
          ),
        ),
      ),
    );
  });
  $("jobs").replaceChildren(...cards);
  $("jobs-empty").hidden = cards.length > 0;
  $("jobs-count").textContent = cards.length ? String(cards.length) : "";
}

// ------------------------------------------------------------------ sign in / out

function signOut(message) {
  streamAbort?.abort();
  session.keep(null);
  $("app").hidden = true;
  $("signout").hidden = true;
  $("live").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message ?? "";
  $("token").value = "";
  $("token").focus();
}

function signedIn() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  renderDrives();
  renderJobs();
  renderNotices(true);
  void stream();
}

async function signIn(e) {
  e.preventDefault();
  const candidate = $("token").value.trim();
  if (!candidate) return;
  const res = await fetch("/station/v1/notices?limit=1", {
    headers: { authorization: `Bearer ${candidate}` },
  });
  if (!res.ok) {
    const data = await res.json().catch(() => ({}));
    $("login-error").textContent = data?.error?.message ?? `Sign-in failed (${res.status}).`;
    return;
  }
  session.keep(candidate);
  $("token").value = "";
  signedIn();
}

$("login-form").addEventListener("submit", signIn);
$("signout").addEventListener("click", () => signOut());
$("action-cancel").addEventListener("click", () => $("action-dialog").close());
setInterval(() => renderNotices(true), 60_000); // keeps the "… ago" figures honest
session.refused = signOut;
if (session.token) signedIn();
else signOut();
