// The notices panel: what needs the operator, with its next step; handled ones fold away.
import { ACCEPTING, ACTION_LABEL, actionsFor, openAction } from "./actions.js";
import { $, ago, h, pill } from "./dom.js";
import { jobOf, state } from "./session.js";

/** A notice whose cause is gone (the job moved on, the drive left) needs nobody any more. */
function handled(n) {
  if (n.next.info) return true;
  const j = jobOf(n.job);
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
export function renderNotices(force = false) {
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
    const j = jobOf(n.job);
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
