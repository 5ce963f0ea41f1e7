// Throughput sparklines: an SVG polyline of bytes per second over the last minutes, built with
// createElementNS (the page's CSP allows no inline markup or styles). The samples come from the
// station (one value per clock-aligned bucket, newest last), the same ones `station attached
// --watch` draws in the terminal.

const SVG = "http://www.w3.org/2000/svg";

/** Polyline points for `values` in a width × height box: newest at the right, scaled to the peak. */
export function sparklinePoints(values, width, height, slots = values.length) {
  if (!values.length) return "";
  const peak = Math.max(...values, 1);
  const step = width / Math.max(1, slots - 1);
  const offset = slots - values.length;
  return values
    .map((v, i) => {
      const x = (offset + i) * step;
      const y = height - 1 - (Math.max(0, v) / peak) * (height - 2);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
}

/**
 * The sparkline element for a throughput view ({ sampleSeconds, values }), or null without samples.
 * The time axis spans the newest `slots` samples (two minutes at 1 s), and at least `minSlots`,
 * so a copy that just started still draws a readable line from the right edge.
 */
export function sparkline(
  view,
  { width = 120, height = 28, slots: most = 120, minSlots = 12, label = "throughput" } = {},
) {
  const values = view?.values?.slice(-most) ?? [];
  if (!values.length) return null;
  const slots = Math.max(values.length, minSlots);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("role", "img");
  svg.setAttribute("data-points", String(values.length));
  const minutes = Math.round((values.length * (view.sampleSeconds ?? 1)) / 6) / 10;
  const title = document.createElementNS(SVG, "title");
  title.textContent = `${label}: the last ${minutes} min, peak ${Math.max(...values)} B/s`;
  svg.setAttribute("aria-label", title.textContent);
  svg.append(title);
  const points = sparklinePoints(values, width, height, slots);
  // A soft area under the line: a short or low line stays visible.
  const area = document.createElementNS(SVG, "polygon");
  const firstX = points.split(",")[0];
  area.setAttribute("points", `${firstX},${height} ${points} ${width},${height}`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points);
  svg.append(area, line);
  return svg;
}
