// A job's accepted rows/s and its limiter's rate over time, as an inline SVG
// line chart. No chart library: the page's Content-Security-Policy loads only
// its own files, and two lines need nothing more than this.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

// 1, 2, 5, 10, 20, 50, ... : the smallest of these at or above `value`.
function niceCeil(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

// Points as an SVG path, a gap wherever a value is null (the limit is unknown then).
function pathOf(points) {
  let d = "";
  let open = false;
  for (const [px, py] of points) {
    if (py === null) { open = false; continue; }
    d += `${open ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)} `;
    open = true;
  }
  return d.trim();
}

// history: [[seconds since start, accepted rows/s, limit requests/s or null], ...]
// jobRate: the rate asked for (requests/s), so the scale does not jump around.
// width: pixels available (the chart is drawn at that size, so text stays legible).
function rateChart(history, jobRate, width) {
  const W = Math.max(260, Math.round(width || 600)), H = 150;
  const left = 40, right = 10, top = 10, bottom = 22;
  const tMax = Math.max(10, ...history.map((p) => p[0]));
  const yMax = niceCeil(1.1 * Math.max(jobRate || 0, ...history.map((p) => Math.max(p[1], p[2] || 0))));
  const x = (t) => left + ((W - left - right) * t) / tMax;
  const y = (v) => top + (H - top - bottom) * (1 - v / yMax);
  const last = history[history.length - 1];
  const chart = svgEl("svg", {
    class: "rate-chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `Accepted rows per second and the rate limit over ${Math.round(tMax)} s; ` +
      `now ${last ? last[1].toFixed(1) : 0} rows/s, limit ${last && last[2] !== null ? last[2].toFixed(1) : "unknown"}`,
    "data-points": history.length,
  });
  for (const v of [0, yMax / 2, yMax]) {
    chart.append(svgEl("line", { class: "grid-line", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
    chart.append(svgEl("text", { class: "axis-label", x: left - 6, y: y(v) + 4, "text-anchor": "end" },
      Number.isInteger(v) ? String(v) : v.toFixed(1)));
  }
  chart.append(svgEl("text", { class: "axis-label", x: left, y: H - 6 }, "0 s"));
  chart.append(svgEl("text", { class: "axis-label", x: W - right, y: H - 6, "text-anchor": "end" },
    `${Math.round(tMax)} s`));
  chart.append(svgEl("path", { class: "line-limit", d: pathOf(history.map((p) => [x(p[0]), p[2] === null ? null : y(p[2])])) }));
  chart.append(svgEl("path", { class: "line-accepted", d: pathOf(history.map((p) => [x(p[0]), y(p[1])])) }));
  return chart;
}
