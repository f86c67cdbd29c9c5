// Numbers, dates and the small pieces every view shows the same way.

import { el, route } from "./dom.js";
import { capital, locale, T, t, tOr } from "./i18n.js";

const MODEL_KEYS = { defect_risk: "defect_risk", delay: "delay", churn: "churn_risk" };

export const LEVELS = ["low", "medium", "high"];
export const LEVEL_RANK = { low: 0, medium: 1, high: 2 };
export const DEPARTMENTS = ["quality", "technical", "safety", "cost", "customer service", "project office"];

export function pct(p, digits = 0) {
  if (p === null || p === undefined || Number.isNaN(p)) return "–";
  const v = p * 100;
  if (v > 0 && v < 1 && digits === 0) return "<1%";
  if (v < 100 && v > 99 && digits === 0) return ">99%";
  return `${v.toFixed(digits)}%`;
}

const formats = new Map(); // Intl.NumberFormat is slow to make: one per language and number of digits

export function num(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const key = `${locale()}:${digits}`;
  if (!formats.has(key)) {
    formats.set(key, new Intl.NumberFormat(locale(), { minimumFractionDigits: digits, maximumFractionDigits: digits }));
  }
  return formats.get(key).format(Number(x));
}

export function days(d) {
  if (d === null || d === undefined || Number.isNaN(d)) return "–";
  return t("days_n", { n: num(d) });
}

export function range(lo, hi) {
  return `${num(lo)}–${num(hi)}`;
}

export function signed(x, format) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const shown = format(Math.abs(x));
  if (Math.abs(x) < 1e-9 || shown === format(0)) return "±" + format(0);
  return (x > 0 ? "+" : "−") + shown;
}

/** Percentage points, for a change of a probability. */
export function points(x) {
  return t("points_n", { n: num(x * 100, Math.abs(x) < 0.1 ? 1 : 0) });
}

export function date(iso) {
  if (!iso) return "–";
  return String(iso).slice(0, 10);
}

export function dateTime(iso) {
  if (!iso) return "–";
  const s = String(iso).replace("T", " ");
  return s.slice(0, 16);
}

export function money(x) {
  if (x === null || x === undefined) return "–";
  if (Math.abs(x) >= 1e6) return t("millions_n", { n: num(x / 1e6, 1) });
  return num(x);
}

export function levelBadge(level) {
  if (!level) return el("span", { class: "level level-none" }, "–");
  return el("span", { class: `level level-${level}`, data: { level } }, T(`level_${level}`));
}

export function departmentName(department) {
  return tOr(`department_${String(department).replace(/ /g, "_")}`, department);
}

export function departmentBadge(department) {
  if (!department) return null;
  const slug = String(department).replace(/[^a-z]+/gi, "-").toLowerCase();
  return el("span", { class: `dept dept-${slug}`, data: { department } }, departmentName(department));
}

export function modelName(model) {
  return capital(tOr(MODEL_KEYS[model] || model, model));
}

/** A number that opens its model's accuracy view: the one click from any figure to how good it is. */
export function metricLink(model, text, extraClass) {
  return el(
    "a",
    { class: ["figure", extraClass], href: route("accuracy", model), title: T("accuracy_link_title", { model: modelName(model) }) },
    text,
  );
}

/** A driver: its words, the department that must act, and which way it pushes. */
export function driverItem(driver, withDepartment = true) {
  const up = driver.direction === "up";
  return el(
    "li",
    { class: ["driver", up ? "driver-up" : "driver-down"], data: { feature: driver.feature } },
    el("span", { class: "driver-arrow", title: T(up ? "pushed_up" : "pushed_down") }, up ? "▲" : "▼"),
    el("span", { class: "driver-body" }, el("span", { class: "driver-text" }, driver.text), withDepartment ? departmentBadge(driver.department) : null),
  );
}

export function driverList(drivers, withDepartment = true) {
  if (!drivers || drivers.length === 0) return el("p", { class: "muted small" }, T("no_drivers"));
  return el("ul", { class: "drivers" }, drivers.map((d) => driverItem(d, withDepartment)));
}

export function errorBox(err) {
  return el("div", { class: "error", role: "alert" }, el("strong", null, T("error")), " ", String(err.message || err));
}

export function loading() {
  return el("div", { class: "loading" }, T("loading"));
}
