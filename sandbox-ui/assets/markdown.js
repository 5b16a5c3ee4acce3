// Markdown for model answers, built only with createElement and textContent: nothing
// the model writes is ever parsed as HTML, so `<script>` or `onerror=` in an answer
// stays visible text. Links are kept only for http(s) and mailto.
"use strict";

(function () {
  const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
  const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
  const QUOTE = /^\s{0,3}>\s?(.*)$/;
  const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const TABLE_RULE = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;
  const SAFE_URL = /^(https?:\/\/|mailto:)/i;
  // Quotes and lists nest by recursion; deeper than this is shown as plain text, so a
  // hostile answer cannot exhaust the stack.
  const MAX_DEPTH = 12;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Inline spans, earliest match first; the text between matches becomes text nodes.
  const INLINE = [
    { re: /`([^`\n]+)`/, make: (m) => el("code", null, m[1]) },
    { re: /\*\*([^*\n](?:[^\n]*?[^*\n])?)\*\*/, make: (m) => wrap("strong", m[1]) },
    { re: /__([^_\n](?:[^\n]*?[^_\n])?)__/, make: (m) => wrap("strong", m[1]) },
    { re: /~~([^~\n]+)~~/, make: (m) => wrap("del", m[1]) },
    { re: /\*([^*\s](?:[^*\n]*?[^*\s])?)\*/, make: (m) => wrap("em", m[1]) },
    { re: /(?:^|(?<=[\s(]))_([^_\s](?:[^_\n]*?[^_\s])?)_(?=$|[\s.,;:!?)])/, make: (m) => wrap("em", m[1]) },
    { re: /\[([^\]\n]+)\]\(([^)\s]+)\)/, make: (m) => link(m[1], m[2]) },
    { re: /\bhttps?:\/\/[^\s<>()]+[^\s<>().,;:!?'"]/, make: (m) => link(m[0], m[0]) },
  ];

  function wrap(tag, text) {
    const e = el(tag);
    inline(text, e);
    return e;
  }

  function link(text, url) {
    if (!SAFE_URL.test(url)) return document.createTextNode(text === url ? text : text + " (" + url + ")");
    const a = el("a");
    a.href = url;
    a.rel = "noopener noreferrer nofollow";
    a.target = "_blank";
    inline(text, a);
    return a;
  }

  function inline(text, parent) {
    while (text.length) {
      let best = null;
      for (const rule of INLINE) {
        const m = rule.re.exec(text);
        if (m && (!best || m.index < best.m.index)) best = { m, rule };
      }
      if (!best) break;
      if (best.m.index > 0) addText(text.slice(0, best.m.index), parent);
      parent.appendChild(best.rule.make(best.m));
      text = text.slice(best.m.index + best.m[0].length);
    }
    if (text) addText(text, parent);
  }

  // Single newlines inside a paragraph are kept as line breaks: chat answers rely on them.
  function addText(text, parent) {
    text.split("\n").forEach((line, i) => {
      if (i) parent.appendChild(el("br"));
      if (line) parent.appendChild(document.createTextNode(line));
    });
  }

  function codeBlock(lang, body) {
    const box = el("div", "code-block");
    const head = el("div", "code-head");
    head.appendChild(el("span", "code-lang", lang || "text"));
    const copy = el("button", "copy", "Copy");
    copy.type = "button";
    head.appendChild(copy);
    const pre = el("pre");
    const code = el("code", lang ? "language-" + lang : null, body);
    pre.appendChild(code);
    box.appendChild(head);
    box.appendChild(pre);
    return box;
  }

  function cells(line) {
    let s = line.trim();
    if (s.startsWith("|")) s = s.slice(1);
    if (s.endsWith("|")) s = s.slice(0, -1);
    return s.split("|").map((c) => c.trim());
  }

  function table(lines) {
    const t = el("table");
    const head = el("thead");
    const tr = el("tr");
    cells(lines[0]).forEach((c) => { const th = el("th"); inline(c, th); tr.appendChild(th); });
    head.appendChild(tr);
    t.appendChild(head);
    const body = el("tbody");
    lines.slice(2).forEach((line) => {
      const row = el("tr");
      cells(line).forEach((c) => { const td = el("td"); inline(c, td); row.appendChild(td); });
      body.appendChild(row);
    });
    t.appendChild(body);
    const wrapBox = el("div", "table-wrap");
    wrapBox.appendChild(t);
    return wrapBox;
  }

  function startsBlock(line, next) {
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
      ITEM.test(line) || (line.includes("|") && next !== undefined && TABLE_RULE.test(next));
  }

  function blocks(lines, parent, depth = 0) {
    if (depth > MAX_DEPTH) {
      const p = el("p");
      addText(lines.join("\n"), p);
      parent.appendChild(p);
      return;
    }
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (!line.trim()) { i++; continue; }
      if ((m = FENCE.exec(line))) {
        const fence = m[1];
        const body = [];
        i++;
        while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
        i++; // closing fence (absent while the answer is still streaming)
        parent.appendChild(codeBlock(m[2], body.join("\n")));
      } else if ((m = HEADING.exec(line))) {
        const h = el("h" + Math.min(6, m[1].length + 2));
        inline(m[2], h);
        parent.appendChild(h);
        i++;
      } else if (RULE.test(line)) {
        parent.appendChild(el("hr"));
        i++;
      } else if (QUOTE.test(line)) {
        const inner = [];
        while (i < lines.length && (m = QUOTE.exec(lines[i]))) { inner.push(m[1]); i++; }
        const q = el("blockquote");
        blocks(inner, q, depth + 1);
        parent.appendChild(q);
      } else if (line.includes("|") && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1])) {
        const rows = [line, lines[i + 1]];
        i += 2;
        while (i < lines.length && lines[i].includes("|") && lines[i].trim()) rows.push(lines[i++]);
        parent.appendChild(table(rows));
      } else if ((m = ITEM.exec(line))) {
        i = list(lines, i, parent, depth);
      } else {
        const para = [];
        while (i < lines.length && lines[i].trim() && (!para.length || !startsBlock(lines[i], lines[i + 1]))) {
          para.push(lines[i++]);
        }
        const p = el("p");
        inline(para.join("\n"), p);
        parent.appendChild(p);
      }
    }
  }

  // A list: items at the first item's indentation; deeper lines belong to the item
  // above and are rendered as blocks inside it (nested lists, code).
  function list(lines, i, parent, depth) {
    const first = ITEM.exec(lines[i]);
    const indent = first[1].length;
    const ordered = /\d/.test(first[2]);
    const l = el(ordered ? "ol" : "ul");
    if (ordered && parseInt(first[2], 10) !== 1) l.start = parseInt(first[2], 10);
    while (i < lines.length) {
      const m = ITEM.exec(lines[i]);
      if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
      const body = [m[3]];
      i++;
      while (i < lines.length) {
        const line = lines[i];
        const deeper = line.length - line.trimStart().length > indent;
        if (line.trim() && !deeper) break;
        if (!line.trim() && !(i + 1 < lines.length && lines[i + 1].length - lines[i + 1].trimStart().length > indent)) break;
        body.push(line.slice(Math.min(indent + 2, line.length - line.trimStart().length)));
        i++;
      }
      const li = el("li");
      if (body.length === 1) inline(body[0], li); else blocks(body, li, depth + 1);
      l.appendChild(li);
      while (i < lines.length && !lines[i].trim() && i + 1 < lines.length && ITEM.test(lines[i + 1]) &&
        ITEM.exec(lines[i + 1])[1].length === indent) i++;
    }
    parent.appendChild(l);
    return i;
  }

  function render(text) {
    const frag = document.createDocumentFragment();
    blocks(String(text).replace(/\r\n?/g, "\n").split("\n"), frag);
    return frag;
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
})();
