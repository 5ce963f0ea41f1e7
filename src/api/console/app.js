// drive-station operator console. Plain ES module, no build step.
// The operator token lives in sessionStorage and goes out only as an Authorization header; the
// push stream is read with fetch() (EventSource cannot send headers), so no token is in any URL.

const TOKEN_KEY = "drive-station.operatorToken";
const $ = (id) => document.getElementById(id);
const state = { drives: [], jobs: [], notices: [] };
let token = sessionStorage.getItem(TOKEN_KEY);
let streamAbort;

// ------------------------------------------------------------------ DOM and formatting helpers

/** Builds an element; children are nodes or text (always set as text: nothing is parsed as HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false || v === null) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
function bytes(n) {
  if (!Number.isFinite(n)) return "—";
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${UNITS[i]}`;
}

function duration(s) {
  if (!Number.isFinite(s) || s < 0) return "—";
  s = Math.round(s);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (hh) return `${hh} h ${String(mm).padStart(2, "0")} m ${String(ss).padStart(2, "0")} s`;
  if (mm) return `${mm} m ${String(ss).padStart(2, "0")} s`;
  return `${ss} s`;
}

function ago(iso) {
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (!Number.isFinite(s)) return "";
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

const pill = (text, kind = text) => h("span", { class: `pill pill-${String(kind).toLowerCase()}` }, text);

function bar(percent, kind) {
  const p = Math.max(0, Math.min(100, Math.floor(percent)));
  const fill = h("div", { class: "bar-fill" });
  fill.style.width = `${p}%`; // through the CSSOM: the page's CSP allows no inline style attributes
  return h(
    "div",
    {
      class: `bar ${kind ?? ""}`,
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": p,
    },
    fill,
  );
}

function toast(text, kind = "ok") {
  const t = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  $("toasts").append(t);
  setTimeout(() => t.remove(), kind === "error" ? 9000 : 4000);
}

// ------------------------------------------------------------------ API

async function api(path, body) {
  const res = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) signOut("The token was refused: sign in again.");
  if (!res.ok) throw new Error(data?.error?.message ?? `${res.status} ${res.statusText}`);
  return data;
}

const jobPath = (j) =>
  `/station/v1/subscriptions/${encodeURIComponent(j.subscriptionId)}/resourceGroups/${encodeURIComponent(j.resourceGroup)}/jobs/${encodeURIComponent(j.name)}`;

// ------------------------------------------------------------------ push stream (fetch + SSE framing)

async function stream() {
  streamAbort?.abort();
  const abort = new AbortController();
  streamAbort = abort;
  let delay = 1000;
  while (!abort.signal.aborted) {
    try {
      const res = await fetch("/station/v1/events", {
        headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
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
};

function jobOf(key) {
  return key && state.jobs.find((j) => j.name === key.name && j.subscriptionId === key.subscriptionId);
}

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
      h("td", { class: "num" }, moving && p.bytesPerSecond > 0 ? `${bytes(p.bytesPerSecond)}/s` : "—"),
      h("td", { class: "num" }, moving && p.etaSeconds !== undefined ? duration(p.etaSeconds) : "—"),
    );
  });
  $("drives").replaceChildren(...rows);
  $("drives-empty").hidden = rows.length > 0;
  $("drives-count").textContent = rows.length ? String(rows.length) : "";
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
const ACCEPTING = ["Shipping", "Received", "Transferring"];

/** The operator actions a job's state allows (the server checks again). */
function actionsFor(j) {
  const ended = j.state === "Completed" || j.state === "Closed";
  const faulted = j.state === "Faulted" || j.drives.some((d) => d.state === "Faulted");
  return [
    !ended && j.state !== "Packaging" && j.state !== "Faulted" && "checkIn",
    ACCEPTING.includes(j.state) &&
      j.drives.some((d) => d.state === "Specified" || d.state === "NeverReceived") &&
      "arrived",
    [...ACCEPTING, "Packaging"].includes(j.state) && "fault", // the states a fault may leave
    faulted && "resolve",
    j.state === "Packaging" && "shipBack",
    j.closable && "close",
  ].filter(Boolean);
}

const ACTION_LABEL = {
  checkIn: "Check in",
  arrived: "Arrived",
  fault: "Fault",
  resolve: "Resolve",
  shipBack: "Ship back",
  close: "Close",
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

// ------------------------------------------------------------------ notices

/** A notice whose cause is gone (the job moved on, the drive left) needs nobody any more. */
function handled(n) {
  if (n.next.info) return true;
  const j =
    n.job && state.jobs.find((x) => x.name === n.job.name && x.subscriptionId === n.job.subscriptionId);
  switch (n.code) {
    case "PackageHeld":
      return !j || ACCEPTING.includes(j.state) || j.state === "Packaging";
    case "Faulted":
    case "FaultUnresolved":
      return (
        !j ||
        (n.driveId
          ? j.drives.find((d) => d.driveId === n.driveId)?.state !== "Faulted"
          : j.state !== "Faulted")
      );
    case "JobClosable":
    case "PackageOverdue":
      return j?.state !== "Shipping";
    case "UnknownDrive":
      return !state.drives.some((d) => d.status === "unknown" && (!n.driveId || d.serial === n.driveId));
    case "TransferPaused":
      return !state.drives.some((d) => d.status === "paused" && d.driveId === n.driveId);
    default:
      return !j || j.state === "Completed" || j.state === "Closed";
  }
}

let noticesShown = "";
function renderNotices(force = false) {
  const open = [];
  const done = [];
  for (const n of state.notices) (handled(n) ? done : open).push(n);
  // Drives push several times a second; rebuild only when what is shown would change.
  const shown = JSON.stringify([
    open.map((n) => n.id),
    done.map((n) => n.id),
    state.jobs.map((j) => [j.name, j.state]),
  ]);
  if (!force && shown === noticesShown) return;
  noticesShown = shown;
  const card = (n) => {
    const j =
      n.job && state.jobs.find((x) => x.name === n.job.name && x.subscriptionId === n.job.subscriptionId);
    const act = n.next.action && j && actionsFor(j).includes(n.next.action);
    return h(
      "article",
      { class: `notice ${handled(n) ? "is-handled" : ""}`, "data-code": n.code },
      h(
        "div",
        { class: "notice-head" },
        pill(n.code, n.next.info ? "pending" : "warn"),
        h(
          "span",
          { class: "sub muted" },
          `${n.job ? n.job.name : ""}${n.driveId ? ` · drive ${n.driveId}` : ""} · ${ago(n.at)}`,
        ),
      ),
      h("p", { class: "notice-message" }, n.message),
      h("p", { class: "notice-next" }, h("strong", {}, "Next step: "), n.next.step),
      act
        ? h(
            "button",
            {
              class: "btn small primary",
              type: "button",
              "data-action": n.next.action,
              onclick: () => openAction(n.next.action, j, n),
            },
            ACTION_LABEL[n.next.action],
          )
        : null,
    );
  };
  $("notices").replaceChildren(
    ...(open.length
      ? open.map(card)
      : [h("p", { class: "empty muted" }, "Nothing needs a person right now.")]),
  );
  $("attention-count").textContent = open.length ? String(open.length) : "";
  $("handled").hidden = done.length === 0;
  $("handled-count").textContent = String(done.length);
  $("handled-list").replaceChildren(...done.map(card));
}

// ------------------------------------------------------------------ actions

function field(name, label, attrs = {}) {
  return h(
    "label",
    { class: "field" },
    h("span", {}, label),
    h("input", { name, autocomplete: "off", ...attrs }),
  );
}

function driveSelect(name, label, drives, { optional } = {}) {
  return h(
    "label",
    { class: "field" },
    h("span", {}, label),
    h(
      "select",
      { name },
      optional ? h("option", { value: "" }, "The whole job") : null,
      drives.map((d) => h("option", { value: d.driveId }, `${d.driveId} (${d.state})`)),
    ),
  );
}

/** Each action: its dialog (title, help, fields) and the request it sends. */
const ACTIONS = {
  checkIn: (j, n) => {
    const heldIds = j.heldPackages.flatMap((p) => p.driveIds);
    const ids = n?.driveId
      ? [n.driveId]
      : heldIds.length
        ? heldIds
        : j.drives.filter((d) => d.state === "Specified").map((d) => d.driveId);
    return {
      title: `Check in a package for ${j.name}`,
      help: "Record the package at the dock: listed drives become Received; drives the job does not list are extra drives.",
      fields: [
        field("trackingNumber", "Tracking number", {
          required: true,
          value: j.deliveryPackage?.trackingNumber ?? "",
        }),
        field("driveIds", "Drive IDs in the package (comma-separated)", {
          required: true,
          value: ids.join(", "),
        }),
      ],
      send: (f) =>
        api(`${jobPath(j)}/packages`, {
          trackingNumber: f.trackingNumber,
          driveIds: f.driveIds.split(/[\s,]+/).filter(Boolean),
        }),
    };
  },
  arrived: (j, n) => {
    const waiting = j.drives.filter((d) => d.state === "Specified" || d.state === "NeverReceived");
    return {
      title: `A drive of ${j.name} arrived`,
      help: "A drive that came on its own, or was marked NeverReceived, moves to Received.",
      fields: [
        driveSelect(
          "driveId",
          "Drive",
          n?.driveId ? waiting.filter((d) => d.driveId === n.driveId) : waiting,
        ),
        field("trackingNumber", "Tracking number (optional)"),
      ],
      send: (f) =>
        api(
          `${jobPath(j)}/drives/${encodeURIComponent(f.driveId)}/arrived`,
          f.trackingNumber ? { trackingNumber: f.trackingNumber } : {},
        ),
    };
  },
  fault: (j) => ({
    title: `Fault ${j.name}`,
    help: "The job (or one drive) stops where it is until resolved; contact the customer.",
    fields: [
      field("reason", "Reason", { required: true, maxlength: 512 }),
      driveSelect(
        "driveId",
        "Drive",
        j.drives.filter((d) => d.state !== "Faulted" && d.state !== "ShippedBack"),
        { optional: true },
      ),
    ],
    send: (f) =>
      api(`${jobPath(j)}/fault`, f.driveId ? { reason: f.reason, driveId: f.driveId } : { reason: f.reason }),
  }),
  resolve: (j) => {
    const faulted = j.drives.filter((d) => d.state === "Faulted");
    return {
      title: `Resolve ${j.name}`,
      help: `Returns it to the state it left${j.faulted ? ` (${j.faulted.from})` : ""}.`,
      fields: j.state === "Faulted" ? [] : [driveSelect("driveId", "Drive", faulted)],
      send: (f) => api(`${jobPath(j)}/resolve`, f.driveId ? { driveId: f.driveId } : {}),
    };
  },
  shipBack: (j) => ({
    title: `Ship back the drives of ${j.name}`,
    help: "Every drive (and extra drive) goes to the return address; the job ends Completed, or Closed if a drive had errors.",
    fields: [
      field("carrierName", "Carrier", { required: true }),
      field("trackingNumber", "Tracking number", { required: true }),
    ],
    send: (f) =>
      api(`${jobPath(j)}/shipBack`, { carrierName: f.carrierName, trackingNumber: f.trackingNumber }),
  }),
  close: (j) => ({
    title: `Close ${j.name}`,
    help: "The package is overdue and the customer has not answered for 30 days: the job ends Closed.",
    fields: [],
    send: () => api(`${jobPath(j)}/close`, {}),
  }),
};

function openAction(action, job, notice) {
  const spec = ACTIONS[action](job, notice);
  const dialog = $("action-dialog");
  dialog.dataset.action = action;
  $("action-title").textContent = spec.title;
  $("action-help").textContent = spec.help;
  $("action-fields").replaceChildren(...spec.fields);
  $("action-error").textContent = "";
  $("action-submit").textContent = ACTION_LABEL[action];
  $("action-submit").disabled = false;
  $("action-form").onsubmit = async (e) => {
    e.preventDefault();
    const values = Object.fromEntries(new FormData($("action-form")).entries());
    $("action-submit").disabled = true;
    try {
      const updated = await spec.send(values);
      dialog.close();
      toast(`${ACTION_LABEL[action]}: ${job.name} is now ${updated?.properties?.state ?? "updated"}.`);
    } catch (err) {
      $("action-error").textContent = err.message;
      $("action-submit").disabled = false;
    }
  };
  dialog.showModal();
  dialog.querySelector("input, select")?.focus();
}

// ------------------------------------------------------------------ sign in / out

function signOut(message) {
  streamAbort?.abort();
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
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
  token = candidate;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  signedIn();
}

$("login-form").addEventListener("submit", signIn);
$("signout").addEventListener("click", () => signOut());
$("action-cancel").addEventListener("click", () => $("action-dialog").close());
setInterval(() => renderNotices(true), 60_000); // keeps the "… ago" figures honest
if (token) signedIn();
else signOut();
