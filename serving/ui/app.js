// The board: header, language, and the hash routes to the four views.
//   #/                      portfolio
//   #/project/<id>          one project
//   #/worklist/<department> a department's worklist
//   #/accuracy/<model>      a model's test metrics and calibration

import { accuracyView } from "./accuracy.js";
import { el, replace } from "./dom.js";
import { date, dateTime, errorBox, modelName, num } from "./format.js";
import { chooseLanguage, lang, LANGUAGES, loadLanguage, remember, T, t } from "./i18n.js";
import { portfolioView } from "./portfolio.js";
import { projectView } from "./project.js";
import { loadPortfolio } from "./store.js";
import { worklistView } from "./worklist.js";

const ROUTES = [
  [/^#?\/?$/, "portfolio", (root) => portfolioView(root)],
  [/^#\/project\/(.+)$/, "portfolio", (root, id) => projectView(root, id)],
  [/^#\/worklist(?:\/(.*))?$/, "worklist", (root, dept) => worklistView(root, dept)],
  [/^#\/accuracy(?:\/(.*))?$/, "accuracy", (root, model) => accuracyView(root, model)],
];

function decode(part) {
  if (part === undefined) return undefined;
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function show() {
  const root = document.getElementById("view");
  const hash = location.hash || "#/";
  for (const [pattern, tab, view] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("#tabs a")) {
      const on = link.dataset.tab === tab;
      link.classList.toggle("active", on);
      if (on) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    window.scrollTo(0, 0);
    view(root, decode(match[1]));
    return;
  }
  replace(root, errorBox(new Error(T("no_such_page", { route: hash }))));
}

function snapshotLine(p) {
  const f = p.data_freshness || {};
  const versions = Object.entries(p.model_versions || {}).map(([name, v]) => `${modelName(name)} v${v}`).join(", ");
  const parts = [
    el("span", { class: "meta-item", data: { meta: "as_of" } }, el("b", null, T("as_of")), " ", date(p.as_of)),
    el("span", { class: "meta-item", data: { meta: "built_at" } }, el("b", null, T("built_at")), " ", dateTime(p.built_at || (p.snapshot && p.snapshot.built_at))),
    el("span", { class: "meta-item", data: { meta: "models" } }, el("b", null, T("model_versions")), " ", versions || "–"),
    el(
      "span",
      { class: ["meta-item", f.stale ? "stale" : null], data: { meta: "freshness" } },
      el("b", null, T("latest_fact")),
      " ",
      dateTime(f.latest_fact || (p.snapshot && p.snapshot.latest_fact)),
      f.days_since_latest_fact !== null && f.days_since_latest_fact !== undefined
        ? ` (${t("days_before_as_of", { n: num(f.days_since_latest_fact, 1) })})`
        : "",
      f.stale ? el("span", { class: "tag tag-stale" }, T("stale")) : null,
    ),
  ];
  return parts;
}

function header() {
  document.title = T("title");
  replace(document.getElementById("brand-name"), T("title"));
  replace(document.getElementById("brand-sub"), T("subtitle"));
  for (const link of document.querySelectorAll("#tabs a")) link.textContent = T(`${link.dataset.tab}`);
  const switcher = document.getElementById("lang");
  switcher.setAttribute("aria-label", T("language"));
  for (const button of switcher.querySelectorAll("button")) {
    const on = button.dataset.lang === lang();
    button.classList.toggle("active", on);
    button.setAttribute("aria-pressed", String(on));
    button.addEventListener("click", () => {
      if (!LANGUAGES.includes(button.dataset.lang) || button.dataset.lang === lang()) return;
      remember(button.dataset.lang);
      // words, drivers and the snapshot's texts all come again in that language
      const url = new URL(location.href);
      if (url.searchParams.has("lang")) {
        url.searchParams.delete("lang"); // else ?lang= would win over the switch
        location.replace(url.toString());
      } else {
        location.reload();
      }
    });
  }
  const meta = document.getElementById("meta");
  loadPortfolio()
    .then((p) => replace(meta, snapshotLine(p)))
    .catch((err) => replace(meta, el("span", { class: "stale" }, String(err.message || err))));
}

async function main() {
  await loadLanguage(chooseLanguage());
  header();
  window.addEventListener("hashchange", show);
  show();
  document.body.classList.add("ready");
}

main();
