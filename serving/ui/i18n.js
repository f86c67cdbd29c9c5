// The page's language and its words: English from strings.js (which the service writes from serving/i18n.py, the
// one catalog), the service's words for the chosen language (GET /v1/ui/strings?lang=...) laid over them.

import { get } from "./api.js";
import { EN } from "./strings.js";

const KEY = "eqsms.lang";
export const LANGUAGES = ["en", "zh"];
let words = { ...EN };
let current = "en";

/** ?lang= in the address (remembered), else the switch's last choice, else the browser's language. */
export function chooseLanguage() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (LANGUAGES.includes(asked)) {
    remember(asked);
    return asked;
  }
  let saved = null;
  try {
    saved = localStorage.getItem(KEY);
  } catch {
    saved = null;
  }
  if (LANGUAGES.includes(saved)) return saved;
  const browser = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
  return browser.toLowerCase().startsWith("zh") ? "zh" : "en";
}

export function remember(lang) {
  try {
    localStorage.setItem(KEY, lang);
  } catch {
    /* private mode: the choice lasts for this page only */
  }
}

export async function loadLanguage(lang) {
  current = lang;
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  try {
    const served = await get("ui/strings", { lang });
    if (served && typeof served === "object") words = { ...EN, ...served };
  } catch {
    words = { ...EN }; // the board still works in English words if the strings cannot be had
  }
}

export function lang() {
  return current;
}

export function locale() {
  return current === "zh" ? "zh-CN" : "en-GB";
}

/** The word for a key, with {name} placeholders filled in; the key itself if no language has it. */
export function t(key, vars) {
  let text = words[key] ?? EN[key] ?? key;
  for (const [name, value] of Object.entries(vars || {})) text = text.split(`{${name}}`).join(String(value));
  return text;
}

/** The same, first letter in capitals: for headings, column heads, labels and buttons. */
export function T(key, vars) {
  return capital(t(key, vars));
}

export function capital(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}

/** A word that may be missing: the fallback (a data value, say) when the language has none. */
export function tOr(key, fallback) {
  return words[key] ?? EN[key] ?? fallback;
}
