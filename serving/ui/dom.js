// Building the page without ever parsing data as markup: every value goes in as a text node or an attribute.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "text") node.textContent = String(value);
    else if (key === "data") for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: el("td", {class: "num"}, "12%", otherNode). Strings become text nodes, never markup. */
export function el(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, the same way. */
export function svg(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** A table: its header cells (a text, or [text, class]) and its body rows (tr elements). */
export function table(attrs, headers, rows) {
  const th = (h) => (Array.isArray(h) ? el("th", { class: h[1], scope: "col" }, h[0]) : el("th", { scope: "col" }, h));
  return el("table", attrs, el("thead", null, el("tr", null, headers.map(th))), el("tbody", null, rows));
}

/** Replace a node's children. */
export function replace(node, ...children) {
  node.replaceChildren();
  return fill(node, null, children);
}

/** A hash link to a view; each path segment is encoded, so an id can never leave the route. */
export function route(...segments) {
  return "#/" + segments.map((s) => encodeURIComponent(String(s))).join("/");
}
