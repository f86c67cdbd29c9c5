// The API key, when the service asks for one (a 401: its settings name keys). Asked once in a small form, kept
// for this tab only (sessionStorage: gone when the tab closes), sent by api.js as `Authorization: Bearer <key>`.
// The page and its scripts need no key: they hold no data.

import { el } from "./dom.js";

const STORE = "eqsms.key";
// The form's words. They are asked for before the language's words can be had (those need the key too), so they
// live here rather than in serving/i18n.py's catalog.
const WORDS = {
  en: {
    title: "API key",
    needed: "This service asks for an API key. Ask its administrator for one.",
    wrong: "That key was refused. Check it, or ask for a new one.",
    label: "Key",
    submit: "Continue",
  },
  zh: {
    title: "API 密钥",
    needed: "本服务需要 API 密钥，请向管理员索取。",
    wrong: "该密钥被拒绝。请检查，或索取新的密钥。",
    label: "密钥",
    submit: "继续",
  },
};

let kept = null; // when sessionStorage cannot be used: this page only
let asking = null; // the form on screen, shared by every call that met a 401 meanwhile

export function savedKey() {
  try {
    return sessionStorage.getItem(STORE) || kept;
  } catch {
    return kept;
  }
}

function keep(key) {
  kept = key;
  try {
    sessionStorage.setItem(STORE, key);
  } catch {
    /* private mode: the key lasts for this page only */
  }
}

export function forgetKey() {
  kept = null;
  try {
    sessionStorage.removeItem(STORE);
  } catch {
    /* nothing kept */
  }
}

function words() {
  return document.documentElement.lang.startsWith("zh") ? WORDS.zh : WORDS.en;
}

/** Show the form (once, however many calls wait); true when a key was given, false when the form was dismissed. */
export function askKey(refused) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const w = words();
    let given = false;
    const input = el("input", { id: "api-key", name: "api-key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
    const form = el(
      "form",
      { class: "key-form" },
      el("h2", { id: "api-key-title" }, w.title),
      el("p", { class: refused ? "key-refused" : "muted" }, refused ? w.wrong : w.needed),
      el("label", { for: "api-key" }, w.label),
      input,
      el("div", { class: "key-actions" }, el("button", { type: "submit", class: "button primary" }, w.submit)),
    );
    const dialog = el("dialog", { class: "key-dialog", "aria-labelledby": "api-key-title" }, form);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      keep(key);
      given = true;
      dialog.close();
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      asking = null;
      resolve(given);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
  return asking;
}
