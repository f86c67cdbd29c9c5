// What the views share: the portfolio snapshot (its as_of is the date every other call asks about) and the models.

import { get } from "./api.js";
import { lang } from "./i18n.js";

let portfolio = null;
let models = null;

/** GET /v1/portfolio, once per page load (the language is fixed for a page: switching reloads it). */
export function loadPortfolio() {
  if (!portfolio) {
    portfolio = get("portfolio", { lang: lang() });
    portfolio.catch(() => {
      portfolio = null; // a failed load is tried again by the next view
    });
  }
  return portfolio;
}

/** GET /v1/models, once per page load; the list as a map name -> model. */
export function loadModels() {
  if (!models) {
    models = get("models").then((body) => Object.fromEntries(body.models.map((m) => [m.name, m])));
    models.catch(() => {
      models = null;
    });
  }
  return models;
}

/** The snapshot's as_of: the time every other call is asked about, so the board shows one moment. */
export async function asOf() {
  return (await loadPortfolio()).as_of;
}

/** The level of a probability by the snapshot's thresholds (portfolio.levels: target -> [medium, high]), or null. */
export function levelOf(portfolio, target, probability) {
  const cuts = portfolio && portfolio.levels && portfolio.levels[target];
  if (!cuts || probability === null || probability === undefined) return null;
  return probability >= cuts[1] ? "high" : probability >= cuts[0] ? "medium" : "low";
}

/** A target's kind (classifier: a probability; slip: days), by the models, else by its name. */
export function kindOf(modelsByName, target) {
  const model = modelsByName && modelsByName[target];
  if (model) return model.kind;
  return target === "delay" ? "slip" : "classifier";
}
