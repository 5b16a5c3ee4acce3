// Times the chat page's Markdown renderer in headless Chromium on a 1,000-line answer
// (paragraphs, lists, tables, code in several languages, math): rendered once whole, as
// a reloaded chat does, and as it streams in (rendered again after every 10 lines, as
// the page does on each piece). Argument: the running sandbox-ui's base URL.
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(join(REPO, "sandbox-ui/tests/browser/package.json"));
const { chromium } = require("playwright-core");

function answer(lines) {
  const out = [];
  const blocks = [
    () => ["## Step " + out.length, "", "Some text with **bold**, `code`, a [link](https://example.com) and $x^2 + y^2 = r^2$.", ""],
    () => ["- item one", "- item two with *emphasis*", "  - nested item", "- [x] a task", ""],
    () => ["| name | value | note |", "|---|---:|---|", "| a | 1 | first |", "| b | 2 | second |", ""],
    () => ["```python", "def f(x: int) -> int:", "    # double it", "    return 2 * x", "print(f(21))", "```", ""],
    () => ["```rust", "fn main() {", '    let v: Vec<u32> = (0..10).collect();', '    println!("{v:?}");', "}", "```", ""],
    () => ["$$", "\\int_0^\\infty e^{-x^2}\\,dx = \\frac{\\sqrt{\\pi}}{2}", "$$", ""],
    () => ["> A quoted line that goes on for a while, as quotes in answers do.", ""],
  ];
  for (let i = 0; out.length < lines; i++) out.push(...blocks[i % blocks.length]());
  return out.slice(0, lines);
}

const base = process.argv[2];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--headless"] });
try {
  const page = await browser.newPage();
  await page.goto(base + "/login");
  await page.addScriptTag({ url: base + "/static/markdown.js" });
  const lines = answer(1000);
  const result = await page.evaluate((lines) => {
    const box = document.createElement("div");
    document.body.appendChild(box);
    const text = lines.join("\n");
    const whole = [];
    for (let i = 0; i < 7; i++) {
      const t0 = performance.now();
      box.replaceChildren(window.SandboxMarkdown.render(text));
      box.getBoundingClientRect(); // layout included
      whole.push(performance.now() - t0);
    }
    whole.sort((a, b) => a - b);
    const t0 = performance.now();
    let renders = 0;
    for (let n = 10; n <= lines.length; n += 10) {
      box.replaceChildren(window.SandboxMarkdown.render(lines.slice(0, n).join("\n")));
      box.getBoundingClientRect();
      renders++;
    }
    const streamed = performance.now() - t0;
    return {
      whole: whole[3],
      streamed,
      renders,
      lastRender: whole[0],
      code: box.querySelectorAll("pre code").length,
      math: box.querySelectorAll("math").length,
    };
  }, lines);
  console.log(
    `render 1,000-line answer   p50 ${result.whole.toFixed(1)} ms (whole, with layout; ${result.code} code blocks, ${result.math} formulas)`,
  );
  console.log(
    `streamed in 10-line pieces ${result.streamed.toFixed(0)} ms for ${result.renders} renders (${(result.streamed / result.renders).toFixed(1)} ms each)`,
  );
} finally {
  await browser.close();
}
