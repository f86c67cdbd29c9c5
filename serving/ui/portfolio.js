// Portfolio: every open project of the snapshot, filtered and sorted in memory; only the first rows are drawn.

import { el, replace, route } from "./dom.js";
import { lang, T, t, tOr } from "./i18n.js";
import {
  LEVEL_RANK,
  LEVELS,
  date,
  days,
  departmentBadge,
  departmentName,
  errorBox,
  levelBadge,
  loading,
  metricLink,
  num,
  pct,
  range,
} from "./format.js";
import { loadPortfolio } from "./store.js";

export const PAGE = 200; // rows drawn at a time: the table stays fast at 10,000 projects

// The view's state outlives the view: back from a project page, the filters and the sort are as they were.
const state = {
  filters: { search: "", type: "", region: "", level: "", client: "", department: "" },
  sort: { key: "defect", desc: true },
  shown: PAGE,
};

const TEXT = (get) => (r) => (get(r) ?? "").toString();
const NUMBER = (get) => (r) => get(r) ?? -Infinity;

const COLUMNS = [
  { key: "project", label: "project", value: TEXT((r) => r.project_id) },
  { key: "client", label: "client", value: TEXT((r) => r.client_id) },
  { key: "type", label: "type", value: TEXT((r) => r.project_type) },
  { key: "region", label: "region", value: TEXT((r) => r.region) },
  { key: "next", label: "next_milestone", value: TEXT((r) => r.next && r.next.planned_date) },
  { key: "defect", label: "defect_risk", value: NUMBER((r) => r.next && r.next.defect_risk.probability), num: true },
  { key: "slip", label: "expected_slip", value: NUMBER((r) => r.next && r.next.delay.expected_slip_days), num: true },
  { key: "late", label: "p_late", value: NUMBER((r) => r.next && r.next.delay.late_probability), num: true },
  { key: "churn", label: "churn_risk", value: NUMBER((r) => r.churn && r.churn.probability), num: true },
  { key: "level", label: "level", value: NUMBER((r) => LEVEL_RANK[r.level]), num: true },
  { key: "driver", label: "top_driver", value: TEXT((r) => r.top_driver && r.top_driver.department) },
];

function matches(row, f) {
  if (f.search && !row.project_id.toLowerCase().includes(f.search.toLowerCase())) return false;
  if (f.type && row.project_type !== f.type) return false;
  if (f.region && row.region !== f.region) return false;
  if (f.level && row.level !== f.level) return false;
  if (f.client && !(row.client_id || "").toLowerCase().includes(f.client.toLowerCase())) return false;
  if (f.department && !(row.top_driver && row.top_driver.department === f.department)) return false;
  return true;
}

/** Filtered and sorted in memory: each row's sort key is read once (10,000 rows sort in tens of milliseconds). */
function visible(projects) {
  const column = COLUMNS.find((c) => c.key === state.sort.key) || COLUMNS[5];
  const sign = state.sort.desc ? -1 : 1;
  const keyed = [];
  for (const r of projects) if (matches(r, state.filters)) keyed.push([column.value(r), r.project_id, r]);
  keyed.sort((a, b) => (a[0] < b[0] ? -sign : a[0] > b[0] ? sign : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return keyed.map((k) => k[2]);
}

function distinct(projects, get) {
  return [...new Set(projects.map(get).filter((v) => v !== null && v !== undefined && v !== ""))].sort();
}

// ------------------------------------------------------------------------------------------------- cells
function probabilityCell(model, risk, cls) {
  if (!risk) return el("td", { class: ["num", cls] }, el("span", { class: "muted" }, "–"));
  return el(
    "td",
    { class: ["num", cls] },
    metricLink(model, pct(risk.probability), `pill level-${risk.level}`),
    el("span", { class: `level-word level-text-${risk.level}` }, T(`level_${risk.level}`)),
  );
}

function slipCell(next) {
  if (!next) return el("td", { class: "num c-slip" }, el("span", { class: "muted" }, "–"));
  const d = next.delay;
  const [lo, hi] = d.range_days || [null, null];
  return el(
    "td",
    { class: "num c-slip" },
    metricLink("delay", days(d.expected_slip_days), `slip level-text-${d.level}`),
    el("span", { class: "range", title: T("range") }, `${range(lo, hi)}`),
  );
}

function lateCell(next) {
  if (!next) return el("td", { class: "num c-late" }, el("span", { class: "muted" }, "–"));
  const d = next.delay;
  return el("td", { class: "num c-late" }, metricLink("delay", pct(d.late_probability), `level-text-${d.level}`));
}

function nextCell(next) {
  if (!next) return el("td", { class: "c-next muted" }, T("no_open_milestone"));
  const overdue = next.delay && next.delay.delay_incurred_days > 0;
  return el(
    "td",
    { class: "c-next" },
    el("div", null, tOr(`kind_${next.kind}`, next.kind || "–")),
    el(
      "div",
      { class: "small muted" },
      date(next.planned_date),
      overdue ? el("span", { class: "overdue" }, " · ", t("overdue_days", { n: num(next.delay.delay_incurred_days) })) : null,
    ),
  );
}

function driverCell(driver) {
  if (!driver) return el("td", { class: "c-driver muted" }, "–");
  return el(
    "td",
    { class: "c-driver" },
    el("div", { class: "driver-line" }, departmentBadge(driver.department), el("span", { class: "driver-text clamp", title: driver.text }, driver.text)),
  );
}

function row(r) {
  return el(
    "tr",
    {
      class: ["project-row", `row-${r.level}`],
      data: {
        projectId: r.project_id,
        level: r.level,
        type: r.project_type ?? "",
        region: r.region ?? "",
        client: r.client_id ?? "",
        department: (r.top_driver && r.top_driver.department) || "",
      },
    },
    el("td", { class: "c-project" }, el("a", { class: "project-link", href: route("project", r.project_id) }, r.project_id)),
    el("td", { class: "c-client" }, r.client_id ?? "–"),
    el("td", { class: "c-type" }, tOr(`type_${r.project_type}`, r.project_type)),
    el("td", { class: "c-region" }, tOr(`region_${r.region}`, r.region)),
    nextCell(r.next),
    probabilityCell("defect_risk", r.next && r.next.defect_risk, "c-defect"),
    slipCell(r.next),
    lateCell(r.next),
    probabilityCell("churn", r.churn, "c-churn"),
    el("td", { class: "c-level" }, levelBadge(r.level)),
    driverCell(r.top_driver),
  );
}

// ------------------------------------------------------------------------------------------------- view
function select(name, label, options, show) {
  const control = el(
    "select",
    { class: "filter", name, "aria-label": T(label) },
    el("option", { value: "" }, T("all")),
    options.map((v) => el("option", { value: v, selected: state.filters[name] === v }, show ? show(v) : v)),
  );
  return el("label", { class: "field" }, el("span", { class: "field-label" }, T(label)), control);
}

function summary(rows, all) {
  const count = { low: 0, medium: 0, high: 0 };
  for (const r of rows) if (r.level in count) count[r.level] += 1;
  const tile = (level) =>
    el(
      "button",
      { type: "button", class: ["tile", `tile-${level}`, state.filters.level === level ? "active" : null], data: { level } },
      el("span", { class: "tile-value" }, num(count[level])),
      el("span", { class: "tile-label" }, t(`${level}_risk`)),
    );
  return el(
    "div",
    { class: "tiles" },
    el(
      "div",
      { class: "tile tile-total" },
      el("span", { class: "tile-value" }, num(all.length)),
      el("span", { class: "tile-label" }, t("open_projects")),
    ),
    LEVELS.slice().reverse().map(tile),
  );
}

export async function portfolioView(root) {
  replace(root, loading());
  let data;
  try {
    data = await loadPortfolio();
  } catch (err) {
    replace(root, errorBox(err));
    return;
  }
  const projects = data.projects || [];
  const tiles = el("div");
  const counter = el("p", { class: "counter muted small", "aria-live": "polite" });
  const body = el("tbody");
  const more = el("button", { type: "button", class: "button more" });
  const headers = COLUMNS.map((c) =>
    el(
      "th",
      { class: ["sortable", c.num ? "num" : null, `h-${c.key}`], scope: "col", data: { key: c.key } },
      el("button", { type: "button", class: "sort" }, T(c.label), el("span", { class: "sort-mark", "aria-hidden": "true" })),
    ),
  );
  let rows = [];

  function draw() {
    rows = visible(projects);
    replace(tiles, summary(rows, projects));
    const fragment = document.createDocumentFragment();
    for (const r of rows.slice(0, state.shown)) fragment.append(row(r));
    body.replaceChildren(fragment);
    for (const th of headers) {
      const on = th.dataset.key === state.sort.key;
      th.setAttribute("aria-sort", on ? (state.sort.desc ? "descending" : "ascending") : "none");
      th.querySelector(".sort-mark").textContent = on ? (state.sort.desc ? "▼" : "▲") : "";
    }
    tell();
    performance.mark("eqsms:portfolio-drawn");
  }

  function tell() {
    const drawn = Math.min(state.shown, rows.length);
    counter.textContent = T("showing_counter", { shown: num(drawn), matching: num(rows.length), total: num(projects.length) });
    more.hidden = drawn >= rows.length;
    more.textContent = T("show_more", { n: num(Math.min(PAGE, rows.length - drawn)) });
  }

  more.addEventListener("click", () => {
    const from = state.shown;
    state.shown += PAGE;
    const fragment = document.createDocumentFragment();
    for (const r of rows.slice(from, state.shown)) fragment.append(row(r));
    body.append(fragment);
    tell();
  });

  for (const th of headers) {
    th.querySelector("button").addEventListener("click", () => {
      const column = COLUMNS.find((c) => c.key === th.dataset.key);
      if (state.sort.key === column.key) state.sort.desc = !state.sort.desc;
      else state.sort = { key: column.key, desc: Boolean(column.num) };
      state.shown = PAGE;
      draw();
    });
  }

  const search = el("input", {
    type: "search",
    class: "filter",
    name: "search",
    placeholder: T("search_placeholder"),
    value: state.filters.search,
    "aria-label": T("search"),
  });
  const client = el("input", {
    type: "search",
    class: "filter",
    name: "client",
    list: "clients",
    placeholder: T("client_placeholder"),
    value: state.filters.client,
    "aria-label": T("client"),
  });
  const clients = el("datalist", { id: "clients" }, distinct(projects, (r) => r.client_id).map((c) => el("option", { value: c })));
  const reset = el("button", { type: "button", class: "button ghost" }, T("reset"));
  const filters = el(
    "form",
    { class: "filters", role: "search" },
    el("label", { class: "field grow" }, el("span", { class: "field-label" }, T("search")), search),
    select("type", "type", distinct(projects, (r) => r.project_type), (v) => tOr(`type_${v}`, v)),
    select("region", "region", distinct(projects, (r) => r.region), (v) => tOr(`region_${v}`, v)),
    select("level", "level", LEVELS.slice().reverse(), (v) => T(`level_${v}`)),
    el("label", { class: "field" }, el("span", { class: "field-label" }, T("client")), client, clients),
    select("department", "department", distinct(projects, (r) => r.top_driver && r.top_driver.department), departmentName),
    el("div", { class: "field end" }, reset),
  );
  filters.addEventListener("submit", (e) => e.preventDefault());
  filters.addEventListener("input", (e) => {
    const name = e.target.name;
    if (!(name in state.filters)) return;
    state.filters[name] = e.target.value.trim();
    state.shown = PAGE;
    draw();
  });
  reset.addEventListener("click", () => {
    for (const key of Object.keys(state.filters)) state.filters[key] = "";
    for (const control of filters.querySelectorAll(".filter")) control.value = "";
    state.shown = PAGE;
    draw();
  });
  tiles.addEventListener("click", (e) => {
    const tile = e.target.closest("button.tile");
    if (!tile) return;
    const level = tile.dataset.level;
    state.filters.level = state.filters.level === level ? "" : level;
    filters.querySelector('select[name="level"]').value = state.filters.level;
    state.shown = PAGE;
    draw();
  });

  const table = el(
    "table",
    { class: "grid-table portfolio", "aria-label": T("portfolio") },
    el("thead", null, el("tr", null, headers)),
    body,
  );
  replace(
    root,
    el(
      "section",
      { class: "view view-portfolio", lang: lang() === "zh" ? "zh-CN" : "en" },
      el("div", { class: "view-head" }, el("h1", null, T("portfolio")), tiles),
      filters,
      counter,
      el("div", { class: "table-wrap" }, table),
      el("div", { class: "more-wrap" }, more),
    ),
  );
  draw();
}
