// Worklist: for one department, the milestones and clients where its drivers push risk up most.

import { get } from "./api.js";
import { shareBar } from "./charts.js";
import { el, replace, route, table } from "./dom.js";
import { capital, lang, T, t, tOr } from "./i18n.js";
import {
  DEPARTMENTS,
  date,
  days,
  departmentName,
  driverList,
  errorBox,
  loading,
  metricLink,
  modelName,
  num,
  pct,
  points,
} from "./format.js";
import { asOf, kindOf, loadModels } from "./store.js";

function inUnits(kind, value, sign) {
  if (value === null || value === undefined) return "–";
  const text = kind === "slip" ? days(Math.abs(value)) : points(Math.abs(value));
  if (!sign) return text;
  return (value < 0 ? "−" : "+") + text;
}

function item(it, rank, models) {
  const kind = kindOf(models, it.target);
  return el(
    "tr",
    { class: "work-item", data: { projectId: it.project_id, target: it.target } },
    el("td", { class: "num muted" }, String(rank)),
    el(
      "td",
      null,
      el("a", { class: "project-link", href: route("project", it.project_id) }, it.project_id),
      el("div", { class: "small muted" }, it.client_id ?? ""),
    ),
    el(
      "td",
      null,
      it.milestone_id ? el("div", null, tOr(`kind_${it.kind}`, it.kind || "")) : el("div", null, T("client")),
      el("div", { class: "small muted nowrap" }, it.milestone_id || ""),
      it.planned_date ? el("div", { class: "small muted nowrap" }, date(it.planned_date)) : null,
    ),
    el("td", { class: "nowrap" }, modelName(it.target)),
    el("td", { class: "num" }, metricLink(it.target, kind === "slip" ? days(it.prediction) : pct(it.prediction))),
    el("td", { class: "num added" }, inUnits(kind, it.added, true)),
    el("td", { class: "share" }, shareBar(it.share), el("span", { class: "small" }, pct(it.share))),
    el("td", { class: "num gain" }, it.whatif_gain === null || it.whatif_gain === undefined ? "–" : inUnits(kind, -it.whatif_gain, true)),
    el("td", { class: "c-drivers" }, driverList(it.drivers, false)),
  );
}

export async function worklistView(root, department) {
  const chosen = DEPARTMENTS.includes(department) ? department : DEPARTMENTS[0];
  replace(root, loading());
  const list = el("div", null, loading());
  replace(
    root,
    el(
      "section",
      { class: "view view-worklist", data: { department: chosen } },
      el("div", { class: "view-head stacked" }, el("h1", null, T("worklist")), el("p", { class: "muted" }, T("worklist_explain"))),
      el(
        "nav",
        { class: "segmented", "aria-label": T("department") },
        DEPARTMENTS.map((d) =>
          el("a", { href: route("worklist", d), class: d === chosen ? "active" : null, "aria-current": d === chosen ? "page" : null, data: { department: d } }, capital(departmentName(d))),
        ),
      ),
      list,
    ),
  );
  try {
    const [when, models] = await Promise.all([asOf(), loadModels().catch(() => null)]);
    const answer = await get("worklist", { department: chosen, as_of: when, lang: lang(), limit: 50 });
    const items = answer.items || [];
    if (items.length === 0) {
      replace(list, el("p", { class: "muted empty" }, T("worklist_empty", { department: departmentName(chosen) })));
      return;
    }
    replace(
      list,
      el(
        "div",
        { class: "table-wrap" },
        table(
          { class: "grid-table worklist" },
          [
            ["#", "num"],
            T("project"),
            T("milestone"),
            T("model"),
            [T("prediction"), "num"],
            [T("risk_added"), "num"],
            T("share_of_push"),
            [T("what_if_gain"), "num"],
            T("drivers"),
          ],
          items.map((it, i) => item(it, i + 1, models)),
        ),
      ),
    );
  } catch (err) {
    replace(list, errorBox(err));
  }
}
