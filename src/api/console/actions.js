// The operator's actions on a job: each one's dialog (title, help, fields) and the request it sends.
import { $, h, toast } from "./dom.js";
import { api, jobPath } from "./session.js";

export const ACCEPTING = ["Shipping", "Received", "Transferring"];

/** The operator actions a job's state allows (the server checks again). */
export function actionsFor(j) {
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

export const ACTION_LABEL = {
  checkIn: "Check in",
  arrived: "Arrived",
  fault: "Fault",
  resolve: "Resolve",
  shipBack: "Ship back",
  close: "Close",
};

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

export function openAction(action, job, notice) {
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
