// Planners' notes and overrides about a project's predictions: listed newest first (GET /v1/notes) and recorded
// from a small form (POST /v1/feedback). They sit beside the predictions in the prediction log.

import { get, post } from "./api.js";
import { el, replace } from "./dom.js";
import { capital, T } from "./i18n.js";
import { dateTime, errorBox, levelBadge, loading, modelName } from "./format.js";

const MODELS = ["defect_risk", "delay", "churn"];

function itemView(item) {
  const outcome = item.outcome_label === null || item.outcome_label === undefined ? null : T("feedback_outcome", { value: String(item.outcome_label) });
  return el(
    "li",
    { class: ["feedback-item", item.kind], data: { id: item.id, kind: item.kind } },
    el("div", { class: "muted small" }, `${dateTime(item.at)} · ${modelName(item.model)}${item.milestone_id ? ` · ${item.milestone_id}` : ""}${item.author ? ` · ${item.author}` : ""}`),
    item.corrected_level ? el("span", null, T("feedback_corrected"), " ", levelBadge(item.corrected_level)) : null,
    outcome ? el("span", { class: "small" }, outcome) : null,
    item.note ? el("p", { class: "feedback-note" }, item.note) : null,
  );
}

function form(projectId, milestones, onSaved) {
  const model = el("select", { name: "model" }, MODELS.map((m) => el("option", { value: m }, modelName(m))));
  const milestone = el("select", { name: "milestone_id" }, milestones.map((m) => el("option", { value: m }, m)));
  const level = el("select", { name: "corrected_level" }, el("option", { value: "" }, T("feedback_no_level")), ["low", "medium", "high"].map((l) => el("option", { value: l }, T(`level_${l}`))));
  const note = el("textarea", { name: "note", rows: 2, maxlength: 2000, placeholder: T("feedback_placeholder") });
  const said = el("div", { class: "feedback-said" });
  const sync = () => {
    milestone.disabled = model.value === "churn";
  };
  model.addEventListener("change", sync);
  sync();
  return el(
    "form",
    {
      class: "feedback-form",
      onsubmit: async (event) => {
        event.preventDefault();
        const body = { project_id: projectId, model: model.value, note: note.value.trim(), corrected_level: level.value || null };
        if (model.value !== "churn") body.milestone_id = milestone.value;
        try {
          await post("feedback", body);
          note.value = "";
          level.value = "";
          replace(said);
          onSaved();
        } catch (err) {
          replace(said, errorBox(err));
        }
      },
    },
    el("div", { class: "feedback-fields" }, model, milestone, level),
    note,
    el("button", { type: "submit" }, T("feedback_save")),
    said,
  );
}

/** The card: the project's notes, and the form to add one about a milestone's (or its client's) prediction. */
export function feedbackCard(projectId, milestones) {
  const list = el("div", null, loading());
  const refresh = () =>
    get("notes", { project_id: projectId })
      .then((answer) =>
        replace(list, answer.items.length ? el("ul", { class: "feedback-list" }, answer.items.map(itemView)) : el("p", { class: "muted small" }, T("feedback_none"))),
      )
      .catch((err) => replace(list, errorBox(err)));
  refresh();
  return el("section", { class: "card feedback" }, el("h2", null, capital(T("feedback"))), el("p", { class: "muted small" }, T("feedback_explain")), list, form(projectId, milestones, refresh));
}
