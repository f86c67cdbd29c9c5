// Project page: each open milestone's three predictions with their drivers and a what-if panel, the client's churn
// risk, the trend over past weeks, and the facts behind them.

import { post } from "./api.js";
import { lineChart } from "./charts.js";
import { el, replace, route, table } from "./dom.js";
import { lang, T, t, tOr } from "./i18n.js";
import {
  date,
  dateTime,
  days,
  driverList,
  errorBox,
  levelBadge,
  loading,
  metricLink,
  money,
  num,
  pct,
  points,
  range,
  signed,
} from "./format.js";
import { asOf, levelOf, loadPortfolio } from "./store.js";
import { feedbackCard } from "./feedback.js";

// ----------------------------------------------------------------------------------------------- risks
function bigProbability(model, risk) {
  return el(
    "div",
    { class: "big-figure" },
    metricLink(model, pct(risk.probability), `pill big level-${risk.level}`),
    levelBadge(risk.level),
  );
}

function defectBlock(m) {
  const risk = m.defect_risk;
  if (!risk) return null;
  return el(
    "div",
    { class: "risk-block block-defect", data: { target: "defect_risk" } },
    el("h4", null, T("defect_risk")),
    el("p", { class: "muted small" }, T("defect_risk_explain")),
    bigProbability("defect_risk", risk),
    el("h5", null, T("drivers")),
    driverList(risk.drivers),
  );
}

function delayBlock(m, level) {
  const d = m.delay;
  if (!d) return null;
  const [lo, hi] = d.range_days || [null, null];
  const coverage = d.range_coverage ? t("range_coverage_share", { share: pct(d.range_coverage) }) : "";
  return el(
    "div",
    { class: "risk-block block-delay", data: { target: "delay" } },
    el("h4", null, T("delay")),
    el("p", { class: "muted small" }, T("delay_explain", { n: num(d.late_tolerance_days) })),
    el(
      "div",
      { class: "big-figure" },
      metricLink("delay", days(d.expected_slip_days), `pill big ${level ? `level-${level}` : "neutral"}`),
      level ? levelBadge(level) : null,
    ),
    el(
      "dl",
      { class: "facts-inline" },
      el("dt", null, T("range")),
      el("dd", null, metricLink("delay", t("days_n", { n: range(lo, hi) })), coverage ? el("span", { class: "muted small" }, ` (${coverage})`) : null),
      el("dt", null, T("p_late")),
      el("dd", null, metricLink("delay", pct(d.late_probability))),
      d.delay_incurred_days > 0 ? el("dt", null, T("delay_incurred")) : null,
      d.delay_incurred_days > 0 ? el("dd", { class: "overdue" }, days(d.delay_incurred_days)) : null,
    ),
    el("h5", null, T("drivers")),
    driverList(d.drivers),
  );
}

// ----------------------------------------------------------------------------------------------- what-if
const OUTPUTS = [
  ["defect_risk", "probability", "defect_risk", "probability"],
  ["delay", "expected_slip_days", "expected_slip", "days"],
  ["delay", "late_probability", "p_late", "probability"],
  ["churn", "probability", "churn_risk", "probability"],
];

function shown(value, unit) {
  return unit === "days" ? days(value) : pct(value, 1);
}

function change(value, unit) {
  if (unit !== "days") return signed(value, (v) => points(v));
  return signed(value, (v) => t("days_n", { n: num(v, v < 10 ? 1 : 0) }));
}

function whatIfResult(answer) {
  const rows = [];
  for (const [model, output, label, unit] of OUTPUTS) {
    const before = answer.before[model] && answer.before[model][output];
    if (before === undefined) continue;
    const after = answer.after[model][output];
    const diff = answer.difference[model][output];
    const said = change(diff, unit);
    const moved = !said.startsWith("±"); // a change too small to show is no change
    rows.push(
      el(
        "tr",
        { data: { model, output } },
        el("th", { scope: "row" }, T(label)),
        el("td", { class: "num before" }, metricLink(model, shown(before, unit))),
        el("td", { class: "num after" }, metricLink(model, shown(after, unit))),
        el("td", { class: ["num", "difference", moved ? (diff < 0 ? "better" : "worse") : "same"] }, said),
      ),
    );
  }
  return table(
    { class: "compact whatif-result" },
    ["", [T("before"), "num"], [T("after"), "num"], [T("change"), "num"]],
    rows,
  );
}

function whatIfPanel(projectId, milestoneId, when) {
  const current = el("span", { class: "muted small current-labour" });
  const labour = el("input", {
    type: "number",
    name: "labour_hours_ratio_recent",
    class: "input-number",
    step: "0.05",
    min: "0",
    max: "5",
    inputmode: "decimal",
  });
  const defects = el("input", { type: "checkbox", name: "close_defects" });
  const defectsNow = el("span", { class: "muted small" });
  const complaints = el("input", { type: "checkbox", name: "answer_complaints" });
  const complaintsNow = el("span", { class: "muted small" });
  const button = el("button", { type: "submit", class: "button primary" }, T("run_what_if"));
  const out = el("div", { class: "whatif-out", "aria-live": "polite" });
  const form = el(
    "form",
    { class: "whatif-form" },
    el(
      "label",
      { class: "field" },
      el("span", { class: "field-label" }, T("labour_hours_ratio")),
      el("span", { class: "inline" }, labour, current),
    ),
    el("label", { class: "check" }, defects, el("span", null, T("close_open_defects")), defectsNow),
    el("label", { class: "check" }, complaints, el("span", null, T("answer_complaints")), complaintsNow),
    el("div", null, button),
  );

  // The milestone's current values, to show beside the controls (the panel works without them).
  post("features", { project_id: projectId, milestone_id: milestoneId, as_of: when })
    .then((answer) => {
      const f = answer.features || {};
      const ratio = f.labour_hours_ratio_recent;
      current.textContent =
        ratio === null || ratio === undefined ? T("no_data") : t("now_value", { ratio: num(ratio, 2) });
      if (ratio !== null && ratio !== undefined) labour.placeholder = num(ratio, 2);
      if (f.defects_open !== undefined) defectsNow.textContent = t("open_defects_now", { n: num(f.defects_open), m: num(f.inspections_open) });
      if (f.complaints_open !== undefined) complaintsNow.textContent = t("open_complaints_now", { n: num(f.complaints_open) });
    })
    .catch(() => {});

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const changes = {};
    const ratio = labour.value.trim();
    if (ratio !== "") {
      const value = Number(ratio);
      if (!Number.isFinite(value) || value < 0) {
        replace(out, errorBox(new Error(T("bad_labour_ratio"))));
        return;
      }
      changes.labour_hours_ratio_recent = value;
    }
    if (defects.checked) Object.assign(changes, { defects_open: 0, inspections_open: 0 });
    if (complaints.checked) changes.complaints_open = 0;
    if (Object.keys(changes).length === 0) {
      replace(out, el("p", { class: "muted small" }, T("choose_change")));
      return;
    }
    button.disabled = true;
    replace(out, loading());
    try {
      const answer = await post("whatif", { project_id: projectId, milestone_id: milestoneId, as_of: when, changes });
      replace(out, whatIfResult(answer));
    } catch (err) {
      replace(out, errorBox(err));
    } finally {
      button.disabled = false;
    }
  });
  return el(
    "div",
    { class: "risk-block block-whatif whatif", data: { milestoneId } },
    el("h4", null, T("what_if")),
    el("p", { class: "muted small" }, T("what_if_explain")),
    form,
    out,
  );
}

function milestoneCard(projectId, m, when, portfolioRow, portfolio) {
  const overdue = m.delay && m.delay.delay_incurred_days > 0;
  const next = portfolioRow && portfolioRow.next && portfolioRow.next.milestone_id === m.milestone_id ? portfolioRow.next : null;
  const delayLevel = next && next.delay && next.delay.level ? next.delay.level : levelOf(portfolio, "delay", m.delay && m.delay.late_probability);
  return el(
    "article",
    { class: "card milestone", data: { milestoneId: m.milestone_id } },
    el(
      "header",
      { class: "card-head" },
      el("h3", null, tOr(`kind_${m.kind}`, m.kind || T("milestone"))),
      el("span", { class: "muted" }, m.milestone_id),
      el("span", { class: "muted" }, T("planned_on", { date: date(m.planned_date) })),
      overdue ? el("span", { class: "tag tag-overdue" }, T("overdue_days", { n: num(m.delay.delay_incurred_days) })) : null,
    ),
    el("div", { class: "milestone-grid" }, defectBlock(m), delayBlock(m, delayLevel), whatIfPanel(projectId, m.milestone_id, when)),
  );
}

function churnCard(churn, clientId) {
  if (!churn) return null;
  return el(
    "article",
    { class: "card churn", data: { target: "churn" } },
    el("header", { class: "card-head" }, el("h3", null, T("churn_risk")), clientId ? el("span", { class: "muted" }, clientId) : null),
    el("p", { class: "muted small" }, T("churn_explain")),
    bigProbability("churn", churn),
    el("h5", null, T("drivers")),
    driverList(churn.drivers),
  );
}

// ----------------------------------------------------------------------------------------------- trend
function trendSection(answer) {
  const pts = (answer.points || []).map((p) => ({ ...p, x: new Date(p.as_of) }));
  if (pts.length === 0) return el("p", { class: "muted" }, T("no_data"));
  const series = (key, label, cls) => ({ label: T(label), cls, points: pts.map((p) => ({ x: p.x, y: p[key] ?? null })) });
  const probabilities = lineChart({
    title: T("trend_probabilities"),
    series: [
      series("defect_risk", "defect_risk", "s-defect"),
      series("late_probability", "p_late", "s-late"),
      series("churn", "churn_risk", "s-churn"),
    ],
    yFormat: (v) => `${Math.round(v * 100)}%`,
    yCap: 1,
  });
  const slip = lineChart({
    title: T("trend_slip"),
    series: [series("expected_slip_days", "expected_slip", "s-slip")],
    yFormat: (v) => num(v),
    width: 420,
  });
  return el("div", { class: "chart-row" }, probabilities, slip);
}

// ----------------------------------------------------------------------------------------------- facts
function tile(label, value, cls) {
  return el("div", { class: ["tile", cls] }, el("span", { class: "tile-value" }, value), el("span", { class: "tile-label" }, label));
}

function indexTile(label, value) {
  if (value === null || value === undefined) return tile(label, "–");
  return tile(label, num(value, 2), value < 0.95 ? "tile-warn" : null);
}

function factsSection(f) {
  const p = f.project || {};
  const open = (f.complaints || []).filter((c) => !c.resolved_at).length;
  const inspections = f.inspections || [];
  const complaints = f.complaints || [];
  return el(
    "div",
    { class: "facts" },
    el(
      "div",
      { class: "tiles" },
      tile(T("open_defects"), num(f.open_defects), f.open_defects > 0 ? "tile-warn" : null),
      indexTile(T("spi"), f.spi),
      indexTile(T("cpi"), f.cpi),
      tile(T("open_complaints"), num(open), open > 0 ? "tile-warn" : null),
      tile(T("contract_value"), money(p.contract_value)),
    ),
    el(
      "div",
      { class: "two-col" },
      factTable("recent_inspections", inspections, "inspections",
        ["date", "discipline", "result", ["defects_found", "num"], ["max_severity", "num"], "closed"],
        (i) => [
          el("td", null, date(i.inspected_at)),
          el("td", null, tOr(`discipline_${i.discipline}`, i.discipline ?? "–")),
          el("td", { class: `result result-${i.result}` }, tOr(`result_${i.result}`, i.result ?? "–")),
          el("td", { class: "num" }, num(i.defects_found)),
          el("td", { class: "num" }, num(i.max_severity)),
          el("td", null, i.closed_at ? date(i.closed_at) : el("span", { class: "tag tag-open" }, T("open"))),
        ],
      ),
      factTable("complaints", complaints, "complaints",
        ["received", "category", ["severity", "num"], "first_response", "resolved"],
        (c) => [
          el("td", null, date(c.received_at)),
          el("td", null, tOr(`category_${c.category}`, c.category ?? "–")),
          el("td", { class: "num" }, num(c.severity)),
          el("td", null, c.first_response_at ? dateTime(c.first_response_at) : el("span", { class: "tag tag-open" }, T("unanswered"))),
          el("td", null, c.resolved_at ? date(c.resolved_at) : el("span", { class: "tag tag-open" }, T("open"))),
        ],
      ),
    ),
  );
}

/** A titled table of facts (latest first): header keys (a key, or [key, class]) and the cells of one item. */
function factTable(title, items, kind, headers, cells) {
  return el(
    "div",
    null,
    el("h4", null, T(title)),
    items.length === 0
      ? el("p", { class: "muted small" }, T("no_data"))
      : table(
          { class: `compact ${kind}` },
          headers.map((h) => (Array.isArray(h) ? [T(h[0]), h[1]] : T(h))),
          items.map((item) => el("tr", null, cells(item))),
        ),
  );
}

function projectHeader(projectId, risk, facts, row) {
  const p = (facts && facts.project) || {};
  const bits = [
    [T("client"), (risk && risk.client_id) || p.client_id || (row && row.client_id)],
    [T("type"), tOr(`type_${p.project_type || (row && row.project_type)}`, p.project_type || (row && row.project_type))],
    [T("region"), tOr(`region_${p.region || (row && row.region)}`, p.region || (row && row.region))],
    [T("planned"), p.planned_start ? `${date(p.planned_start)} → ${date(p.planned_end)}` : null],
  ].filter(([, v]) => v);
  return el(
    "div",
    { class: "project-head" },
    el("h1", { class: "project-id" }, projectId),
    row ? levelBadge(row.level) : null,
    el("dl", { class: "facts-inline" }, bits.map(([k, v]) => [el("dt", null, k), el("dd", null, v)])),
  );
}

// ----------------------------------------------------------------------------------------------- view
export async function projectView(root, projectId) {
  replace(root, loading());
  let when;
  let row = null;
  let snapshot = null;
  try {
    when = await asOf();
    snapshot = await loadPortfolio();
    row = snapshot.projects.find((r) => r.project_id === projectId) || null;
  } catch (err) {
    replace(root, errorBox(err));
    return;
  }
  const head = el("div", null, projectHeader(projectId, null, null, row));
  const milestones = el("div", { class: "milestones" }, loading());
  const side = el("div", { class: "side" });
  const trend = el("div", null, loading());
  const facts = el("div", null, loading());
  const notes = el("div");
  replace(
    root,
    el(
      "section",
      { class: "view view-project", data: { projectId } },
      el("nav", { class: "crumbs" }, el("a", { href: route("") }, T("portfolio")), " / ", el("span", null, projectId)),
      head,
      el("div", { class: "project-top" }, el("div", { class: "main-col" }, el("h2", null, T("open_milestones")), milestones), side),
      el("section", { class: "card" }, el("h2", null, T("trend")), trend),
      el("section", { class: "card" }, el("h2", null, T("facts")), facts),
      notes,
    ),
  );

  let factsAnswer = null;
  let riskAnswer = null;
  const risk = post("risk", { project_id: projectId, as_of: when, lang: lang() }).then((answer) => {
    riskAnswer = answer;
    replace(head, projectHeader(projectId, answer, factsAnswer, row));
    const cards = answer.milestones.map((m) => milestoneCard(projectId, m, when, row, snapshot));
    replace(milestones, cards.length ? cards : el("p", { class: "muted" }, T("no_open_milestones_now")));
    replace(side, churnCard(answer.churn, answer.client_id));
    replace(notes, feedbackCard(projectId, answer.milestones.map((m) => m.milestone_id)));
  });
  risk.catch((err) => replace(milestones, errorBox(err)));
  post("trend", { project_id: projectId, as_of: when, weeks: 12 })
    .then((answer) => replace(trend, trendSection(answer)))
    .catch((err) => replace(trend, errorBox(err)));
  post("facts", { project_id: projectId, as_of: when })
    .then((answer) => {
      factsAnswer = answer;
      replace(facts, factsSection(answer));
      replace(head, projectHeader(projectId, riskAnswer, answer, row));
    })
    .catch((err) => replace(facts, errorBox(err)));
}

