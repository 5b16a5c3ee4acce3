// Markdown for model answers: markdown-it (CommonMark + GFM tables, strikethrough,
// autolinks, task lists), highlight.js for code, KaTeX for $…$ and $$…$$ (as MathML,
// which browsers draw without fonts or CSS), and DOMPurify over the result. The model's
// own HTML is never markup: markdown-it escapes it (html: false), and what markdown-it
// makes still passes DOMPurify, which keeps only formatting, tables, MathML and
// http(s)/mailto links. Bundled by esbuild into the binary (build.rs); nothing comes
// from a CDN.
import katexModule from "@vscode/markdown-it-katex";
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/common";
import MarkdownIt from "markdown-it";
import taskLists from "markdown-it-task-lists";

// A CommonJS module compiled from ES: under Node's rules its default import is the
// whole module object.
const katexPlugin = katexModule.default ?? katexModule;

// An answer is shown while it is written: rendering runs on every streamed piece, so
// highlighting stops at a size where it would make typing lag.
const MAX_HIGHLIGHT_CHARS = 100_000;
const SAFE_URL = /^(?:https?:|mailto:)/i;

const md = new MarkdownIt({
  html: false,
  linkify: true,
  typographer: false,
  // A line break in a message is one, as people write in chats.
  breaks: true,
  highlight(code, lang) {
    if (code.length > MAX_HIGHLIGHT_CHARS) return "";
    try {
      if (lang && hljs.getLanguage(lang)) {
        return hljs.highlight(code, { language: lang, ignoreIllegals: true }).value;
      }
    } catch (_) {
      // An unknown or broken grammar: plain text.
    }
    return "";
  },
})
  .use(taskLists, { enabled: false })
  .use(katexPlugin, { output: "mathml", throwOnError: false, maxSize: 50, maxExpand: 200 });

// Inline $…$ as Pandoc reads it, so that prices are not formulas: the opening $ is
// followed by a non-space, the closing one (the next unescaped $) follows a non-space
// and is not followed by a digit; otherwise the opening $ is a plain dollar sign.
function dollarMath(state, silent) {
  const src = state.src;
  const start = state.pos;
  if (src[start] !== "$" || src[start + 1] === "$") return false;
  const first = src[start + 1];
  if (first === undefined || /\s/.test(first)) return false;
  let end = start + 1;
  for (;;) {
    end = src.indexOf("$", end);
    if (end === -1) return false;
    if (src[end - 1] !== "\\") break;
    end += 1;
  }
  if (/\s/.test(src[end - 1]) || /[0-9]/.test(src[end + 1] ?? "")) return false;
  if (!silent) {
    const token = state.push("math_inline", "math", 0);
    token.markup = "$";
    token.content = src.slice(start + 1, end);
  }
  state.pos = end + 1;
  return true;
}

// \(…\) and \[…\], which models often write for math: read before Markdown's escapes
// would turn them into plain parentheses and brackets.
function parenMath(state, silent) {
  const src = state.src;
  const start = state.pos;
  if (src[start] !== "\\" || (src[start + 1] !== "(" && src[start + 1] !== "[")) return false;
  const display = src[start + 1] === "[";
  const close = display ? "\\]" : "\\)";
  const end = src.indexOf(close, start + 2);
  if (end === -1 || end === start + 2) return false;
  if (!silent) {
    const token = state.push(display ? "math_inline_block" : "math_inline", "math", 0);
    token.markup = display ? "\\[" : "\\(";
    token.content = src.slice(start + 2, end);
  }
  state.pos = end + 2;
  return true;
}
md.inline.ruler.at("math_inline", dollarMath);
md.inline.ruler.before("escape", "math_paren", parenMath);

// Answers sit under the chat's own headings: # in an answer is a third-level heading.
md.renderer.rules.heading_open = (tokens, idx, options, env, self) => {
  const level = Number(tokens[idx].tag.slice(1));
  tokens[idx].tag = "h" + Math.min(6, level + 2);
  return self.renderToken(tokens, idx, options);
};

// Links leave the page, and only for http(s) and mailto: a relative link in an answer
// could otherwise point at the chat's own pages. (DOMPurify's own URL rule would also
// apply to every other attribute's value, so it stays at its default.)
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName !== "A") return;
  if (!SAFE_URL.test(node.getAttribute("href") || "")) {
    node.removeAttribute("href");
    return;
  }
  node.setAttribute("target", "_blank");
  node.setAttribute("rel", "noopener noreferrer");
});

const PURIFY = {
  USE_PROFILES: { html: true, mathMl: true },
  // KaTeX keeps the TeX source in <semantics><annotation> (plain text, for copying and
  // screen readers); annotation-xml, which may hold HTML, stays forbidden.
  ADD_TAGS: ["semantics", "annotation"],
  ADD_ATTR: ["encoding"],
  FORBID_TAGS: ["style", "form", "img", "video", "audio", "iframe", "svg", "annotation-xml"],
  FORBID_ATTR: ["style", "id"],
  RETURN_DOM_FRAGMENT: true,
};

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// Every code block gets a head with its language and a Copy button, and every table a
// scrolling box, built here after sanitising, so the page's own controls never pass
// through the model's text.
function decorate(frag) {
  for (const pre of frag.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    if (!code) continue;
    const lang = [...code.classList].find((c) => c.startsWith("language-"));
    code.classList.add("hljs");
    // markdown-it ends a block's code with its newline; Copy gives the code alone.
    const last = code.lastChild;
    if (last && last.nodeType === Node.TEXT_NODE && last.data.endsWith("\n")) {
      last.data = last.data.slice(0, -1);
    }
    const box = el("div", "code-block");
    const head = el("div", "code-head");
    head.appendChild(el("span", "code-lang", lang ? lang.slice("language-".length) : "text"));
    const copy = el("button", "copy", "Copy");
    copy.type = "button";
    head.appendChild(copy);
    pre.replaceWith(box);
    box.append(head, pre);
  }
  for (const a of frag.querySelectorAll("a:not([href])")) a.replaceWith(...a.childNodes);
  for (const table of frag.querySelectorAll("table")) {
    const wrap = el("div", "table-wrap");
    table.replaceWith(wrap);
    wrap.appendChild(table);
  }
  return frag;
}

function render(text) {
  return decorate(DOMPurify.sanitize(md.render(String(text)).trim(), PURIFY));
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain-HTTP pages have no clipboard API: copy through a hidden selection.
  const area = el("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

function installCopy(root) {
  root.addEventListener("click", async (e) => {
    const button = e.target.closest(".code-block .copy");
    if (!button) return;
    const code = button.closest(".code-block").querySelector("code");
    try {
      await copyText(code.textContent);
      button.textContent = "Copied";
    } catch (_) {
      button.textContent = "Copy failed";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
}

window.SandboxMarkdown = { render, installCopy, copyText };
