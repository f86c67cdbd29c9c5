// Accuracy: each champion's test metrics and its calibration (reliability) curve, from the model's own evidence.

import { reliabilityChart, shareBar } from "./charts.js";
import { el, replace, route } from "./dom.js";
import { capital, T, t, tOr } from "./i18n.js";
import { date, dateTime, errorBox, loading, modelName, num, pct } from "./format.js";
import { get } from "./api.js";
import { loadModels } from "./store.js";

const PERCENT = new Set(["coverage", "positive_rate", "precision_top10"]);
const FIRST = ["roc_auc", "pr_auc", "brier", "ece", "log_loss", "precision_top10", "positive_rate", "mae", "rmse", "r2", "coverage", "mean_width", "late_auc", "late_brier", "late_ece"];

function metricValue(name, value) {
  if (typeof value !== "number") return value === null || value === undefined ? "–" : String(value);
  if (PERCENT.has(name)) return pct(value, 1);
  if (["mae", "rmse", "mean_width"].includes(name)) return t("days_n", { n: num(value, 1) });
  return num(value, 3);
}

function ordered(metrics) {
  const names = Object.keys(metrics).filter((k) => typeof metrics[k] === "number" || metrics[k] === null);
  return names.sort((a, b) => {
    const i = FIRST.indexOf(a);
    const j = FIRST.indexOf(b);
    return (i < 0 ? 99 : i) - (j < 0 ? 99 : j) || a.localeCompare(b);
  });
}

function metricsTable(metrics) {
  return el(
    "table",
    { class: "compact metrics" },
    el("tbody", null, ordered(metrics).map((name) =>
      el(
        "tr",
        { data: { metric: name } },
        el("th", { scope: "row" }, capital(tOr(`metric_${name}`, name)), el("div", { class: "muted small" }, tOr(`metric_${name}_help`, ""))),
        el("td", { class: "num" }, metricValue(name, metrics[name])),
      ),
    )),
  );
}

function bandsTable(bands) {
  const names = Object.keys(bands || {});
  if (names.length === 0) return null;
  const metrics = ordered(Object.assign({}, ...names.map((b) => bands[b]))).filter((m) => m !== "rows");
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "compact bands" },
      el(
        "thead",
        null,
        el("tr", null, el("th", null, T("band")), el("th", { class: "num" }, T("rows")), metrics.map((m) => el("th", { class: "num" }, tOr(`metric_${m}`, m)))),
      ),
      el(
        "tbody",
        null,
        names.map((b) =>
          el(
            "tr",
            null,
            el("th", { scope: "row" }, capital(tOr(`band_${b}`, b))),
            el("td", { class: "num" }, num(bands[b].rows)),
            metrics.map((m) => el("td", { class: "num" }, metricValue(m, bands[b][m]))),
          ),
        ),
      ),
    ),
  );
}

function coverage(byBand, nominal) {
  const names = Object.keys(byBand || {});
  if (names.length === 0) return null;
  return el(
    "div",
    { class: "coverage" },
    el("h4", null, T("coverage_by_band")),
    el("p", { class: "muted small" }, nominal ? T("coverage_explain", { share: pct(nominal) }) : ""),
    el(
      "table",
      { class: "compact coverage-table" },
      el("tbody", null, names.map((b) =>
        el("tr", null, el("th", { scope: "row" }, capital(tOr(`band_${b}`, b))), el("td", { class: "bar-cell" }, shareBar(byBand[b])), el("td", { class: "num" }, pct(byBand[b], 1))),
      )),
    ),
  );
}

function modelPanel(model) {
  const evidence = model.evidence || {};
  const points = evidence.reliability || [];
  const of = evidence.reliability_of === "late_probability" ? t("p_late") : t("probability");
  const window = model.data_window || {};
  const rows = model.rows || {};
  const chart = points.length
    ? reliabilityChart(points, {
        title: T("calibration_of", { of }),
        x: T("predicted"),
        y: T("observed"),
        diagonal: T("perfect_calibration"),
        tip: (p) => T("calibration_bin", { predicted: pct(p.predicted, 1), observed: pct(p.observed, 1), n: num(p.count) }),
      })
    : el("p", { class: "muted" }, T("no_calibration"));
  return el(
    "article",
    { class: "card model", data: { model: model.name } },
    el(
      "header",
      { class: "card-head" },
      el("h2", null, modelName(model.name)),
      el("span", { class: "tag" }, t("version_alias", { version: model.version, alias: model.alias })),
      el("span", { class: "muted small" }, T("trained_on", { when: dateTime(model.trained_at) })),
    ),
    el("p", { class: "purpose" }, capital(tOr(`purpose_${model.name}`, model.purpose))),
    el(
      "div",
      { class: "accuracy-grid" },
      el(
        "div",
        null,
        el("h4", null, T("test_metrics")),
        el(
          "p",
          { class: "muted small" },
          window.test ? T("test_window", { from: date(window.test[0]), to: date(window.test[1]), n: num(rows.test) }) : "",
        ),
        metricsTable(model.test_metrics || {}),
      ),
      el("div", null, chart, el("p", { class: "muted small" }, T("calibration_explain"))),
    ),
    evidence.bands && Object.keys(evidence.bands).length ? el("h4", null, T("by_band")) : null,
    bandsTable(evidence.bands),
    coverage(evidence.coverage_by_band, (model.test_metrics || {}).nominal_coverage),
    el(
      "dl",
      { class: "facts-inline small muted" },
      Object.entries(window).map(([part, span]) => [
        el("dt", null, capital(tOr(`window_${part}`, part))),
        el("dd", null, Array.isArray(span) ? `${date(span[0])} → ${date(span[1])} (${num(rows[part])})` : String(span)),
      ]),
    ),
  );
}

/** How the champion's logged predictions held up (`eqsms monitor`'s figures), or why there are none yet. */
function heldUp(summary, name) {
  const versions = summary && summary.models ? summary.models[name] || [] : [];
  if (versions.length === 0) return el("section", { class: "held-up" }, el("h4", null, T("held_up")), el("p", { class: "muted small" }, T("held_up_none")));
  const flags = ((summary.verdict || {}).reasons || []).filter((r) => r.startsWith(`${name} `));
  return el(
    "section",
    { class: "held-up", data: { model: name } },
    el("h4", null, T("held_up")),
    el("p", { class: "muted small" }, T("held_up_explain", { when: dateTime(summary.outcomes_known_by) })),
    flags.map((f) => el("p", { class: "level-high small" }, `${T("monitor_flag")}: ${f}`)),
    versions.map((v) =>
      el(
        "div",
        { class: "table-wrap" },
        el("p", { class: "small" }, T("held_up_version", { version: v.version, rows: num(v.rows), weeks: num(v.weeks) })),
        el(
          "table",
          { class: "compact held-up-metrics" },
          el("thead", null, el("tr", null, el("th", null, ""), el("th", { class: "num" }, modelName(name)), el("th", { class: "num" }, T("reference_class")))),
          el("tbody", null, Object.keys(v.metrics).filter((m) => !m.startsWith("reference.")).map((m) =>
            el(
              "tr",
              { data: { metric: m } },
              el("th", { scope: "row" }, capital(tOr(`metric_${m}`, m))),
              el("td", { class: "num" }, metricValue(m, v.metrics[m])),
              el("td", { class: "num" }, metricValue(m, v.metrics[`reference.${m}`])),
            ),
          )),
        ),
      ),
    ),
  );
}

/** The model's @champion moves, newest first (GET /v1/history). */
function historyList(moves, name) {
  const mine = (moves || []).filter((m) => m.model === name);
  if (mine.length === 0) return null;
  return el(
    "section",
    { class: "champion-history", data: { model: name } },
    el("h4", null, T("champion_history")),
    el(
      "table",
      { class: "compact history" },
      el("tbody", null, mine.map((m) =>
        el(
          "tr",
          { class: m.applied ? null : "muted", data: { action: m.action } },
          el("td", null, dateTime(m.time)),
          el("td", null, m.from ? `v${m.from} → v${m.to}` : `v${m.to}`),
          el("td", null, tOr(`move_${m.action.replace(/ /g, "_")}`, m.action)),
          el("td", { class: "small" }, m.reason),
          el("td", { class: "small muted" }, m.moved_by),
        ),
      )),
    ),
  );
}

async function championMoves() {
  try {
    return (await get("history")).moves;
  } catch {
    return [];
  }
}

async function monitorSummary() {
  try {
    return await get("monitor/summary");
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

export async function accuracyView(root, name) {
  replace(root, loading());
  let models, summary, moves;
  try {
    [models, summary, moves] = await Promise.all([loadModels(), monitorSummary(), championMoves()]);
  } catch (err) {
    replace(root, errorBox(err));
    return;
  }
  const names = Object.keys(models);
  const chosen = models[name] ? name : names[0];
  replace(
    root,
    el(
      "section",
      { class: "view view-accuracy" },
      el("div", { class: "view-head stacked" }, el("h1", null, T("accuracy")), el("p", { class: "muted" }, T("accuracy_explain"))),
      el(
        "nav",
        { class: "segmented", "aria-label": T("accuracy") },
        names.map((n) => el("a", { href: route("accuracy", n), class: n === chosen ? "active" : null, "aria-current": n === chosen ? "page" : null }, modelName(n))),
      ),
      name && !models[name] ? errorBox(new Error(T("unknown_model", { name }))) : null,
      chosen ? modelPanel(models[chosen]) : el("p", { class: "muted" }, T("no_data")),
      chosen ? heldUp(summary, chosen) : null,
      chosen ? historyList(moves, chosen) : null,
    ),
  );
}
