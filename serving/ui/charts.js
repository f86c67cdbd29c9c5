// Small SVG charts written for the board: a line chart over dates, a reliability (calibration) curve, share bars.
// Labels and tooltips are text nodes, like everything else on the page.

import { el, svg } from "./dom.js";

/** A round top for an axis and its ticks: steps of 1, 2, 2.5 or 5 times a power of ten, at most `most` of them. */
export function niceScale(value, cap, most = 5) {
  const top = Math.max(value * 1.05, 1e-9);
  const raw = top / most;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  let max = Math.ceil(top / step) * step;
  if (cap !== undefined && max > cap) max = cap;
  const ticks = [];
  for (let v = 0; v <= max + step / 1e6; v += step) ticks.push(Number(v.toPrecision(12)));
  return { max, ticks };
}

function legend(series) {
  return el(
    "ul",
    { class: "legend" },
    series.map((s) => el("li", { class: `legend-item ${s.cls}` }, el("span", { class: "swatch" }), s.label)),
  );
}

/**
 * Lines over dates. series: [{label, cls, points: [{x: Date, y: number|null}]}]; a null breaks the line.
 * yFormat formats an axis value; yMax fixes the top (else a round number above the data).
 */
export function lineChart({ series, yFormat, yCap, title, width = 640, height = 220 }) {
  const m = { l: 48, r: 14, t: 12, b: 28 };
  const w = width - m.l - m.r;
  const h = height - m.t - m.b;
  const xs = series.flatMap((s) => s.points.map((p) => p.x.getTime()));
  const ys = series.flatMap((s) => s.points.map((p) => p.y)).filter((y) => y !== null && y !== undefined);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const scale = niceScale(Math.max(0, ...ys), yCap);
  const top = scale.max;
  const X = (t) => m.l + (x1 === x0 ? w / 2 : ((t - x0) / (x1 - x0)) * w);
  const Y = (v) => m.t + h - (v / top) * h;

  const chart = svg("svg", {
    class: "chart line-chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": title || "",
    preserveAspectRatio: "xMidYMid meet",
  });
  for (const v of scale.ticks) {
    chart.append(
      svg("line", { class: "grid", x1: m.l, x2: m.l + w, y1: Y(v), y2: Y(v) }),
      svg("text", { class: "axis-label", x: m.l - 6, y: Y(v) + 4, "text-anchor": "end" }, yFormat(v)),
    );
  }
  const dates = [...new Set(xs)].sort((a, b) => a - b);
  const every = Math.max(1, Math.ceil(dates.length / 6));
  const last = dates.length - 1;
  dates.forEach((t, i) => {
    if (i !== last && (i % every !== 0 || last - i < every)) return; // the last date always, its neighbours not
    chart.append(
      svg("text", { class: "axis-label", x: X(t), y: height - 8, "text-anchor": "middle" }, new Date(t).toISOString().slice(5, 10)),
    );
  });
  chart.append(svg("line", { class: "axis", x1: m.l, x2: m.l + w, y1: m.t + h, y2: m.t + h }));

  for (const s of series) {
    let d = "";
    let pen = false;
    for (const p of s.points) {
      if (p.y === null || p.y === undefined) {
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${X(p.x.getTime()).toFixed(1)},${Y(p.y).toFixed(1)}`;
      pen = true;
    }
    const group = svg("g", { class: `series ${s.cls}` }, svg("path", { class: "line", d }));
    for (const p of s.points) {
      if (p.y === null || p.y === undefined) continue;
      group.append(
        svg(
          "circle",
          { class: "dot", cx: X(p.x.getTime()), cy: Y(p.y), r: 3 },
          svg("title", null, `${s.label} ${p.x.toISOString().slice(0, 10)}: ${yFormat(p.y)}`),
        ),
      );
    }
    chart.append(group);
  }
  return el("figure", { class: "chart-box" }, title ? el("figcaption", null, title) : null, chart, legend(series));
}

/**
 * Predicted against observed, equal-count bins: points on the diagonal are well calibrated.
 * points: [{predicted, observed, count}]; labels: {x, y, diagonal, tip(point)}.
 */
export function reliabilityChart(points, labels, size = 340) {
  const m = { l: 48, r: 14, t: 12, b: 40 };
  const w = size - m.l - m.r;
  const h = size - m.t - m.b;
  const highest = Math.max(0.05, ...points.flatMap((p) => [p.predicted, p.observed]));
  const scale = niceScale(highest, 1);
  const top = scale.max;
  const X = (v) => m.l + (v / top) * w;
  const Y = (v) => m.t + h - (v / top) * h;
  const most = Math.max(1, ...points.map((p) => p.count || 0));
  const chart = svg("svg", { class: "chart reliability", viewBox: `0 0 ${size} ${size}`, role: "img", "aria-label": labels.title || "" });
  for (const v of scale.ticks) {
    const text = `${Math.round(v * 100)}%`;
    chart.append(
      svg("line", { class: "grid", x1: m.l, x2: m.l + w, y1: Y(v), y2: Y(v) }),
      svg("line", { class: "grid", x1: X(v), x2: X(v), y1: m.t, y2: m.t + h }),
      svg("text", { class: "axis-label", x: m.l - 6, y: Y(v) + 4, "text-anchor": "end" }, text),
      svg("text", { class: "axis-label", x: X(v), y: m.t + h + 16, "text-anchor": "middle" }, text),
    );
  }
  chart.append(
    svg("line", { class: "diagonal", x1: X(0), y1: Y(0), x2: X(top), y2: Y(top) }, svg("title", null, labels.diagonal)),
    svg("text", { class: "axis-title", x: m.l + w / 2, y: size - 4, "text-anchor": "middle" }, labels.x),
    svg("text", { class: "axis-title", x: 12, y: m.t + h / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${m.t + h / 2})` }, labels.y),
  );
  const sorted = [...points].sort((a, b) => a.predicted - b.predicted);
  const d = sorted.map((p, i) => `${i ? "L" : "M"}${X(p.predicted).toFixed(1)},${Y(p.observed).toFixed(1)}`).join("");
  chart.append(svg("path", { class: "curve", d }));
  for (const p of sorted) {
    chart.append(
      svg(
        "circle",
        { class: "bin", cx: X(p.predicted), cy: Y(p.observed), r: (3 + 4 * Math.sqrt((p.count || 0) / most)).toFixed(1) },
        svg("title", null, labels.tip(p)),
      ),
    );
  }
  return el("figure", { class: "chart-box" }, labels.title ? el("figcaption", null, labels.title) : null, chart);
}

/** A share 0..1 as a small bar (SVG, so no inline styles are needed). */
export function shareBar(share, cls = "") {
  const v = Math.max(0, Math.min(1, Number(share) || 0));
  return svg(
    "svg",
    { class: `share-bar ${cls}`, viewBox: "0 0 100 8", preserveAspectRatio: "none", "aria-hidden": "true" },
    svg("rect", { class: "share-track", x: 0, y: 0, width: 100, height: 8, rx: 2 }),
    svg("rect", { class: "share-fill", x: 0, y: 0, width: (v * 100).toFixed(1), height: 8, rx: 2 }),
  );
}
