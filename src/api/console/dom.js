// The console's DOM and formatting helpers: elements built from text only, never parsed as HTML.

export const $ = (id) => document.getElementById(id);

/** Builds an element; children are nodes or text (always set as text: nothing is parsed as HTML). */
export function h(tag, attrs = {}, ...children) {
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
export function bytes(n) {
  if (!Number.isFinite(n)) return "—";
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${UNITS[i]}`;
}

export function duration(s) {
  if (!Number.isFinite(s) || s < 0) return "—";
  s = Math.round(s);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (hh) return `${hh} h ${String(mm).padStart(2, "0")} m ${String(ss).padStart(2, "0")} s`;
  if (mm) return `${mm} m ${String(ss).padStart(2, "0")} s`;
  return `${ss} s`;
}

export function ago(iso) {
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (!Number.isFinite(s)) return "";
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export const pill = (text, kind = text) =>
  h("span", { class: `pill pill-${String(kind).toLowerCase()}` }, text);

export function bar(percent, kind) {
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

export function toast(text, kind = "ok") {
  const t = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  $("toasts").append(t);
  setTimeout(() => t.remove(), kind === "error" ? 9000 : 4000);
}
