// sandbox-ui in a real headless Chromium against the real binaries (sandbox-api on
// SmolLM2-135M). Run: npm test (scripts/test does).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { readFileSync } from "node:fs";
import {
  apiReady, browser, createUser, dataDir, fakeApi, fakeHub, freePort, login, shots, sleep, startApi,
  startUi, tinyMistral, waitFor,
} from "./harness.mjs";

const USER = "admin";
const PASSWORD = "correct-horse-battery";
const KEY = "sk-browser-test";

let api, ui, chromium, data, apiPort, uiPort;

before(async () => {
  apiPort = await freePort();
  uiPort = await freePort();
  data = dataDir("data");
  createUser(data, USER, PASSWORD);
  api = await startApi({ port: apiPort, key: KEY });
  await apiReady(api);
  ui = await startUi({ port: uiPort, apiUrl: api.url, keyFile: api.keyFile, data });
  chromium = await browser();
});

after(async () => {
  await chromium?.close();
  await ui?.stop();
  await api?.stop();
});

async function loggedInPage(opts = {}) {
  const context = await chromium.newContext(opts);
  const page = await context.newPage();
  page.on("dialog", (d) => d.dismiss());
  await login(page, ui.url, USER, PASSWORD);
  assert.equal(new URL(page.url()).pathname, "/", "login lands on the chat");
  return { context, page };
}

async function sendMessage(page, text) {
  await page.fill("#input", text);
  await page.press("#input", "Enter");
}

async function lastAnswer(page) {
  return page.locator("article.message.assistant").last();
}

// Sets the chat's max tokens through its settings dialog. Sampled answers of the small
// model can ramble to the context's end, so tests that wait for an answer cap it.
async function setMaxTokens(page, n) {
  // Right after a page load the button's handler may not be attached yet: a click then
  // opens nothing, so click until the dialog is open.
  for (let attempt = 0; ; attempt++) {
    await page.click("#open-settings");
    try {
      await page.waitForFunction(() => document.getElementById("settings-dialog").open, null, { timeout: 2000 });
      break;
    } catch (e) {
      if (attempt >= 4) throw e;
    }
  }
  await page.fill('input[name="max_tokens"]', String(n));
  await page.click("#settings-save");
  await page.waitForFunction(() => !document.getElementById("settings-dialog").open);
}

// A new chat whose answer is allowed 3,000 tokens, once 40 characters of it show.
async function startLongAnswer(page, topic) {
  await setMaxTokens(page, 3000);
  await sendMessage(page, `Write a very long story about a ${topic}, with many chapters.`);
  await page.waitForFunction(() => {
    const a = [...document.querySelectorAll("article.message.assistant")].pop();
    return a && a.textContent.length > 40;
  });
}

// The shared API's queue holds no job: a job stopped by an earlier test leaves the
// queue only once the API sees its connection close.
async function apiQueueFree(timeoutMs) {
  await waitFor(async () => {
    const r = await (await fetch(api.url + "/ready")).json();
    return r.queue && r.queue.running === false && r.queue.waiting === 0;
  }, "the API's queue to be free", timeoutMs);
}

// An answer that ended by itself: complete, or cut off by the test's small max tokens.
async function assertAnswered(page, timeout) {
  const status = await waitAnswerDone(page, timeout);
  assert.ok(status === "complete" || status === "truncated", `the answer ended ${status}`);
}

async function waitAnswerDone(page, timeout = 60000) {
  await page.waitForFunction(() => {
    const a = [...document.querySelectorAll("article.message.assistant")].pop();
    return a && a.dataset.status !== "streaming";
  }, null, { timeout });
  return (await lastAnswer(page)).getAttribute("data-status");
}

test("pages without a session redirect to the login page; a wrong password is refused", async () => {
  for (const p of ["/", "/c/123", "/settings", "/c/1/export.md"]) {
    const r = await fetch(ui.url + p, { redirect: "manual" });
    assert.equal(r.status, 303, p);
    assert.match(r.headers.get("location"), /^\/login/, p);
  }
  const fetchStatus = await fetch(ui.url + "/app/status");
  assert.equal(fetchStatus.status, 401);
  assert.equal((await fetch(ui.url + "/static/app.css")).status, 200, "assets need no session");

  const context = await chromium.newContext();
  const page = await context.newPage();
  await page.goto(ui.url + "/c/123");
  assert.equal(new URL(page.url()).pathname, "/login");
  await page.fill('input[name="username"]', USER);
  await page.fill('input[name="password"]', "not-the-password");
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/login") && r.request().method() === "POST"),
    page.click('button[type="submit"]'),
  ]);
  assert.equal(resp.status(), 401);
  assert.match(await page.textContent("#login-error"), /Wrong user name or password/);
  const cookies = await context.cookies();
  assert.ok(!cookies.some((c) => c.name === "sandbox_session"), "no session after a wrong password");

  // The right password: the session cookie is HttpOnly and SameSite=Strict, and the
  // page asked for before logging in is where the login leads.
  await page.fill('input[name="username"]', USER);
  await page.fill('input[name="password"]', PASSWORD);
  await Promise.all([page.waitForURL(/\/c\/123$/), page.click('button[type="submit"]')]);
  // No conversation 123 here: the error page, from the templates like every page
  // (styled, the message escaped, a way back).
  assert.equal(await page.title(), "This page cannot be shown · AI Sandbox");
  assert.equal(await page.textContent("main .error-text"), "Conversation not found");
  assert.match(await page.getAttribute('link[rel="stylesheet"]', "href"), /^\/static\/app\.css\?v=/);
  assert.equal(await page.getAttribute("main a", "href"), "/");
  const session = (await context.cookies()).find((c) => c.name === "sandbox_session");
  assert.ok(session.httpOnly);
  assert.equal(session.sameSite, "Strict");
  await context.close();
});

test("a fetch without the CSRF token is refused", async () => {
  const { context, page } = await loggedInPage();
  const status = await page.evaluate(async () => {
    const r = await fetch("/app/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ conversation: null, action: "send", content: "hi" }),
    });
    return r.status;
  });
  assert.equal(status, 403);
  await context.close();
});

test("chat streams an answer; Enter sends and Shift+Enter adds a line", async () => {
  const { context, page } = await loggedInPage();
  await setMaxTokens(page, 96);
  await page.fill("#input", "");
  await page.type("#input", "Tell me about the sea.");
  await page.keyboard.down("Shift");
  await page.keyboard.press("Enter");
  await page.keyboard.up("Shift");
  await page.type("#input", "Two sentences please.");
  // The answer is sampled as it streams: several different lengths must be seen.
  const seen = new Set();
  const watching = (async () => {
    for (let i = 0; i < 400; i++) {
      const t = await page.evaluate(() => {
        const a = [...document.querySelectorAll("article.message.assistant")].pop();
        return a ? a.dataset.status + ":" + a.textContent.length : "";
      });
      if (t.startsWith("streaming:")) seen.add(t);
      if (t && !t.startsWith("streaming")) return;
      await sleep(5);
    }
  })();
  await page.keyboard.press("Enter");
  await watching;
  await assertAnswered(page);
  const lengths = [...seen].map((s) => Number(s.split(":")[1])).filter((n) => n > 3);
  assert.ok(new Set(lengths).size >= 2, `saw the answer grow while streaming: ${[...seen]}`);
  const question = await page.locator("article.message.user .md").last().innerText();
  assert.match(question, /Tell me about the sea\.\nTwo sentences please\./);
  assert.ok((await (await lastAnswer(page)).innerText()).length > 10);
  assert.match(new URL(page.url()).pathname, /^\/c\/\d+$/, "the new chat has its own address");
  assert.equal(await page.locator("#conversation-list li.active .conv-link").innerText(), "Tell me about the sea.");
  await context.close();
});

test("Stop ends a long answer at once and frees the model's queue", async () => {
  const { context, page } = await loggedInPage();
  await startLongAnswer(page, "lighthouse keeper");
  await page.click("#stop");
  const t0 = Date.now();
  assert.equal(await waitAnswerDone(page, 5000), "stopped");
  const stoppedAfter = Date.now() - t0;
  await apiQueueFree(2000);
  const freedAfter = Date.now() - t0;
  const text = await (await lastAnswer(page)).innerText();
  await sleep(500);
  assert.equal(await (await lastAnswer(page)).innerText(), text, "no text after Stop");
  assert.match(text, /Stopped\./);
  console.log(`# stop: answer marked stopped after ${stoppedAfter} ms, API queue free after ${freedAfter} ms`);
  // The stored answer keeps its text and status.
  await page.reload();
  assert.equal(await (await lastAnswer(page)).getAttribute("data-status"), "stopped");
  assert.ok((await (await lastAnswer(page)).innerText()).length > 40);
  await context.close();
});

test("a page reloaded mid-answer follows it again, and can stop it", async () => {
  const { context, page } = await loggedInPage();
  await startLongAnswer(page, "river");
  await page.reload();
  assert.equal(await page.getAttribute("#chat", "data-live"), "true");
  await page.waitForSelector("article.message.assistant:last-of-type .typing", { timeout: 5000 });
  const length = async () => (await (await lastAnswer(page)).locator(".md").innerText()).length;
  const first = await length();
  await page.waitForFunction((n) => {
    const a = [...document.querySelectorAll("article.message.assistant")].pop();
    return a.querySelector(".md").innerText.length > n + 20;
  }, first);
  assert.ok(await page.locator("#stop").isVisible(), "the reloaded page offers Stop");
  await page.click("#stop");
  assert.equal(await waitAnswerDone(page, 5000), "stopped");
  await context.close();
});

test("the queue position shows while another request runs", async () => {
  const { context, page } = await loggedInPage();
  // Capped like every answer a test waits for: sampled, it could run to the context's end.
  await setMaxTokens(page, 48);
  await apiQueueFree(10000);
  const busy = new AbortController();
  const hog = fetch(api.url + "/v1/chat/completions", {
    method: "POST",
    signal: busy.signal,
    headers: { Authorization: "Bearer " + KEY, "Content-Type": "application/json" },
    body: JSON.stringify({
      model: "smollm2", stream: true, max_tokens: 400, ignore_eos: true,
      messages: [{ role: "user", content: "Count to one thousand." }],
    }),
  });
  const hogResp = await hog;
  const reader = hogResp.body.getReader();
  await reader.read();
  await sendMessage(page, "Hello there");
  await page.waitForSelector("#queue-note:not([hidden])");
  assert.match(await page.textContent("#queue-note"), /1 request ahead of you/);
  await page.screenshot({ path: path.join(shots, "queue-position.png") });
  busy.abort();
  await assertAnswered(page);
  assert.ok(await page.locator("#queue-note").isHidden());
  await context.close();
});

test("regenerate, edit and resend, rename, per-chat settings, export and delete", async () => {
  const { context, page } = await loggedInPage();
  await setMaxTokens(page, 48);
  await sendMessage(page, "Name a color.");
  await assertAnswered(page);
  const id = new URL(page.url()).pathname.split("/").pop();

  await page.click("article.message.assistant .regenerate");
  await assertAnswered(page);
  assert.equal(await page.locator("article.message").count(), 2, "regenerate replaces the answer");

  await page.click("article.message.user .edit");
  assert.equal(await page.inputValue("#input"), "Name a color.");
  await page.fill("#input", "Name a fruit.");
  await page.press("#input", "Enter");
  await assertAnswered(page);
  assert.equal(await page.locator("article.message").count(), 2);
  assert.equal(await page.locator("article.message.user .md").innerText(), "Name a fruit.");

  // Settings are stored with the chat.
  await page.click("#open-settings");
  await page.fill('textarea[name="system_prompt"]', "You answer in one word.");
  await page.fill('input[name="temperature"]', "0.7");
  await page.fill('input[name="max_tokens"]', "64");
  await page.click("#settings-save");
  await page.waitForFunction(() => !document.getElementById("settings-dialog").open);
  await page.click("#open-settings");
  await page.fill('input[name="temperature"]', "5");
  await page.click("#settings-save");
  assert.ok(await page.evaluate(() => document.getElementById("settings-dialog").open), "the browser keeps the form open");
  assert.ok(await page.evaluate(() => document.querySelector('input[name="temperature"]').validity.rangeOverflow));
  await page.click("#settings-cancel");
  // The server checks too, in words.
  const refused = await page.evaluate(async (id) => {
    const r = await fetch(`/app/c/${id}/settings`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content },
      body: JSON.stringify({ temperature: 5 }),
    });
    return [r.status, (await r.json()).error.message];
  }, id);
  assert.equal(refused[0], 400);
  assert.match(refused[1], /between 0 and 2/);
  await page.reload();
  assert.equal(await page.inputValue('textarea[name="system_prompt"]'), "You answer in one word.");
  assert.equal(await page.inputValue('input[name="temperature"]'), "0.7");
  assert.equal(await page.inputValue('input[name="max_tokens"]'), "64");

  // Rename (the browser's prompt) and export.
  page.removeAllListeners("dialog");
  page.once("dialog", (d) => d.accept("Fruit talk"));
  await page.click(`#conversation-list li[data-id="${id}"] .rename`);
  await page.waitForFunction(() => document.getElementById("chat-title").textContent === "Fruit talk");
  assert.equal(await page.title(), "Fruit talk · AI Sandbox", "the tab's title follows the rename");
  await page.click("#export-menu summary");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-md")]);
  const markdown = readFileSync(await download.path(), "utf8");
  assert.match(markdown, /Fruit talk/);
  assert.match(markdown, /Name a fruit\./);
  assert.equal(download.suggestedFilename(), "fruit-talk.md");
  const json = await (await page.request.get(`${ui.url}/c/${id}/export.json`)).json();
  assert.equal(json.messages.length, 2);

  // Delete asks first; dismissing keeps the chat.
  page.once("dialog", (d) => d.dismiss());
  await page.click(`#conversation-list li[data-id="${id}"] .delete`);
  await sleep(300);
  assert.equal(await page.locator(`#conversation-list li[data-id="${id}"]`).count(), 1);
  page.once("dialog", (d) => d.accept());
  await Promise.all([page.waitForURL(ui.url + "/"), page.click(`#conversation-list li[data-id="${id}"] .delete`)]);
  assert.equal(await page.locator(`#conversation-list li[data-id="${id}"]`).count(), 0);
  assert.equal((await page.request.get(`${ui.url}/c/${id}`)).status(), 404);
  await context.close();
});

test("an answer cut off by its length limit says so, is exported so, and Continue extends it", async () => {
  const { context, page } = await loggedInPage();
  await setMaxTokens(page, 8);
  await sendMessage(page, "Write a long story about a lighthouse keeper.");
  assert.equal(await waitAnswerDone(page), "truncated");
  const answer = await lastAnswer(page);
  await answer.locator(".status-note", { hasText: "cut off at its length limit" }).waitFor();
  const first = await page.evaluate(() => [...document.querySelectorAll("article.message.assistant")].pop()._raw);
  assert.ok(first.length > 0);
  const id = new URL(page.url()).pathname.split("/").pop();
  // Per-answer details, from the API's own timings.
  const DETAILS = /^8 tokens · [\d.]+ tokens\/s · first token after \d+\.\d\d s · stopped by the length limit$/;
  assert.match(await answer.locator(".answer-details").textContent(), DETAILS);
  assert.match(await answer.locator(".answer-details").getAttribute("title"), /^\d+ prompt tokens read/);

  // Continue goes on in the same answer, with the same limit: cut off again, longer.
  await answer.locator(".continue").click();
  assert.equal(await waitAnswerDone(page), "truncated");
  assert.equal(await page.locator("article.message").count(), 2, "Continue adds no message");
  const second = await page.evaluate(() => [...document.querySelectorAll("article.message.assistant")].pop()._raw);
  assert.ok(second.startsWith(first.trimEnd()) && second.length > first.trimEnd().length, `${first} | ${second}`);
  // The continued answer's details count both parts.
  assert.match(await answer.locator(".answer-details").textContent(), /^16 tokens · /);
  await page.screenshot({ path: path.join(shots, "truncated-answer.png") });

  // Stored so: after a reload the note and the button are still there.
  await page.reload();
  assert.equal(await (await lastAnswer(page)).getAttribute("data-status"), "truncated");
  await (await lastAnswer(page)).locator(".status-note", { hasText: "cut off" }).waitFor();
  assert.equal(await (await lastAnswer(page)).locator(".continue").count(), 1);
  assert.equal(await page.evaluate(() => [...document.querySelectorAll("article.message.assistant")].pop()._raw), second);
  assert.match(await (await lastAnswer(page)).locator(".answer-details").textContent(), /^16 tokens · /, "details are stored");
  const markdown = await (await page.request.get(`${ui.url}/c/${id}/export.md`)).text();
  assert.match(markdown, /\*\*Assistant\*\* \(cut off at the length limit\):/);
  const json = await (await page.request.get(`${ui.url}/c/${id}/export.json`)).json();
  assert.equal(json.messages[1].status, "truncated");
  assert.equal(json.messages[1].details.tokens, 16);
  assert.equal(json.messages[1].details.finish_reason, "length");

  // An answer that ends by itself has no Continue.
  await setMaxTokens(page, 400);
  await page.click("article.message.assistant .regenerate");
  const status = await waitAnswerDone(page, 120000);
  if (status === "complete") assert.equal(await (await lastAnswer(page)).locator(".continue").count(), 0);
  await context.close();
});

test("model output is rendered as Markdown and never runs as HTML", async () => {
  const answer = [
    "Here is code:",
    "```python",
    "print('<b>hi</b>')",
    "```",
    "<script>window.__xss = 'script'</script>",
    '<img src="x" onerror="window.__xss = \'img\'">',
    "[click me](javascript:window.__xss='link') and **bold** and `x < y`",
    "| a | b |", "|---|---|", "| <i>1</i> | 2 |",
    "",
    "Inline math $E = mc^2$ and a block:",
    "",
    "$$\\int_0^1 x\\,dx = \\frac{1}{2}$$",
    "",
    "- [x] done",
    "- [ ] to do",
    "  - nested ~~old~~ item",
    "",
    "Costs $5 and $10, not math. $\\href{javascript:window.__xss='katex'}{x}$",
  ].join("\n");
  const fake = await fakeApi(answer);
  const xssData = dataDir("xss");
  createUser(xssData, USER, PASSWORD);
  const ui2 = await startUi({ port: await freePort(), apiUrl: fake.url, data: xssData });
  try {
    const context = await chromium.newContext();
    const page = await context.newPage();
    let dialogs = 0;
    page.on("dialog", (d) => { dialogs++; d.dismiss(); });
    await login(page, ui2.url, USER, PASSWORD);
    await sendMessage(page, 'Say <img src=x onerror="window.__xss=\'user\'">');
    await assertAnswered(page);
    for (let round = 0; round < 2; round++) {
      const a = await lastAnswer(page);
      assert.equal(await page.evaluate(() => window.__xss), undefined);
      assert.equal(dialogs, 0);
      assert.equal(await a.locator("script, img, i").count(), 0, "no HTML elements from the model");
      assert.equal(await page.locator("article.message.user img").count(), 0);
      const text = await a.innerText();
      assert.match(text, /<script>window\.__xss = 'script'<\/script>/);
      assert.match(text, /<img src="x" onerror=/);
      assert.equal(await a.locator("a").count(), 0, "javascript: links are not links");
      assert.equal(await a.locator("pre code.language-python").innerText(), "print('<b>hi</b>')");
      assert.equal(await a.locator("strong").innerText(), "bold");
      assert.equal(await a.locator("td").first().innerText(), "<i>1</i>");
      // Highlighting with a language label, math as MathML, task and nested lists.
      assert.equal(await a.locator(".code-lang").innerText(), "python");
      assert.ok(await a.locator("pre code .hljs-built_in, pre code .hljs-string").count() >= 1);
      assert.equal(await a.locator("math").count(), 3, "two formulas and the \\href one, as MathML");
      assert.equal(await a.locator('math[display="block"]').count(), 1);
      assert.match(await a.locator("math").first().locator("annotation").textContent(), /E = mc\^2/);
      assert.equal(await a.locator("input[type=checkbox]").count(), 2);
      assert.equal(await a.locator("input[type=checkbox]:checked").count(), 1);
      assert.equal(await a.locator("input[type=checkbox]:not([disabled])").count(), 0);
      assert.equal(await a.locator("ul ul li s").innerText(), "old");
      assert.match(text, /Costs \$5 and \$10, not math\./);
      if (round === 0) await page.screenshot({ path: path.join(shots, "markdown-code-math-tasks.png"), fullPage: true });
      await page.reload(); // the stored answer, rendered from the page, again
    }
    // The code block's Copy button puts exactly the code on the clipboard.
    await context.grantPermissions(["clipboard-read", "clipboard-write"]);
    await page.click("article.message.assistant .code-block .copy");
    await page.waitForFunction(() => document.querySelector(".code-block .copy").textContent === "Copied");
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), "print('<b>hi</b>')");
    await context.close();
  } finally {
    await ui2.stop();
    await fake.close();
  }
});

test("screenshots: desktop and phone, light and dark", async () => {
  const fake = await fakeApi([
    "Sure! Here is a small Python function that reverses a string:",
    "",
    "```python",
    "def reverse(s: str) -> str:",
    "    return s[::-1]",
    "```",
    "",
    "- It uses **slicing** with a step of `-1`.",
    "- It works for any Unicode string.",
  ].join("\n"));
  const shotData = dataDir("shots");
  createUser(shotData, USER, PASSWORD);
  const ui3 = await startUi({ port: await freePort(), apiUrl: fake.url, data: shotData });
  let chatUrl;
  try {
    for (const [label, viewport] of [["desktop", { width: 1280, height: 800 }], ["phone", { width: 390, height: 844 }]]) {
      for (const colorScheme of ["light", "dark"]) {
        const context = await chromium.newContext({ viewport, colorScheme, deviceScaleFactor: 1 });
        const page = await context.newPage();
        await login(page, ui3.url, USER, PASSWORD);
        if (label === "desktop" && colorScheme === "light") {
          await sendMessage(page, "How do I reverse a string in Python?");
          await assertAnswered(page);
          chatUrl = page.url();
        } else {
          await page.goto(chatUrl);
          await page.waitForSelector("article.message.assistant .code-block");
        }
        await sleep(200);
        await page.screenshot({ path: path.join(shots, `chat-${label}-${colorScheme}.png`) });
        if (label === "phone") {
          await page.click("#menu");
          await sleep(300);
          await page.screenshot({ path: path.join(shots, `sidebar-${label}-${colorScheme}.png`) });
        }
        const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
        assert.equal(bg === "rgb(21, 23, 26)", colorScheme === "dark", `theme follows the system (${bg})`);
        await context.close();
      }
    }
    const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(ui3.url + "/login");
    await page.screenshot({ path: path.join(shots, "login-desktop-light.png") });
    await context.close();
  } finally {
    await ui3.stop();
    await fake.close();
  }
});

test("the banner tells why the model is not ready", async () => {
  // An API whose model file is missing: the error and its message reach the page.
  const brokenApi = await startApi({ port: await freePort(), key: KEY, args: ["--model", "/nonexistent/model.gguf"] });
  const d = dataDir("banner");
  createUser(d, USER, PASSWORD);
  const ui4 = await startUi({ port: await freePort(), apiUrl: brokenApi.url, keyFile: brokenApi.keyFile, data: d });
  try {
    const context = await chromium.newContext();
    const page = await context.newPage();
    await login(page, ui4.url, USER, PASSWORD);
    await page.waitForSelector("#banner:not([hidden])");
    assert.match(await page.textContent("#banner"), /could not be loaded.*nonexistent\/model\.gguf/s);
    await sendMessage(page, "Hello?");
    await page.waitForSelector("#composer-error:not([hidden])");
    // Said once: the banner tells why, the box only what became of the message.
    const note = await page.textContent("#composer-error");
    assert.match(note, /^Not sent: your message is still in the box/);
    assert.doesNotMatch(note, /could not be loaded/);
    assert.equal(await page.inputValue("#input"), "Hello?", "the unsent message is given back");
    await page.screenshot({ path: path.join(shots, "banner-model-error.png") });

    // The API goes away entirely: the page says so and keeps working.
    await brokenApi.stop();
    await page.reload();
    await page.waitForFunction(() => /not answering/.test(document.getElementById("banner").textContent));
    assert.equal(await page.textContent("#banner > p"),
      "The AI model is not answering right now. It restarts by itself; this page reconnects as soon as it is back.");
    await context.close();
  } finally {
    await ui4.stop();
    await brokenApi.stop();
  }
});

test("outages are told once, in plain words, within 3 s, and a message waits for the chat server", async () => {
  const port = await freePort();
  let api5 = await startApi({ port, key: KEY });
  await apiReady(api5);
  const d = dataDir("outage");
  createUser(d, USER, PASSWORD);
  const uiPort5 = await freePort();
  let ui5 = await startUi({ port: uiPort5, apiUrl: api5.url, keyFile: api5.keyFile, data: d });
  const context = await chromium.newContext();
  try {
    const page = await context.newPage();
    await login(page, ui5.url, USER, PASSWORD);
    await setMaxTokens(page, 12);
    await sendMessage(page, "Say hi.");
    await assertAnswered(page);

    // The model server stops: the banner says so within 3 s, in plain words, with
    // the administrator's detail behind "Details".
    const stopped = Date.now();
    await api5.stop();
    await page.waitForFunction(() => /not answering/.test(document.getElementById("banner").textContent), null, { timeout: 3000 });
    const noticed = Date.now() - stopped;
    assert.ok(noticed <= 3000, `the outage showed after ${noticed} ms`);
    const headline = await page.textContent("#banner > p");
    assert.doesNotMatch(headline, /127\.0\.0\.1|journalctl|motd|refused/, "no internals for a chat user");
    assert.equal(await page.isVisible("#banner details p"), false, "the detail waits behind Details");
    await page.click("#banner details summary");
    assert.match(await page.textContent("#banner details p"), new RegExp(`127\\.0\\.0\\.1:${port}.*journalctl -u sandbox-api`));
    await page.screenshot({ path: path.join(shots, "banner-model-server-down.png") });
    // Sending now: the box says what became of the message, not the banner's words again.
    await sendMessage(page, "Still there?");
    await page.waitForSelector("#composer-error:not([hidden])");
    assert.match(await page.textContent("#composer-error"), /^Not sent: your message is still in the box/);
    assert.equal((await page.innerText("body")).split("The AI model is not answering").length - 1, 1, "said once");
    assert.equal(await page.inputValue("#input"), "Still there?");

    // It comes back: the banner goes, and the message can be sent.
    api5 = await startApi({ port, key: KEY });
    await page.waitForSelector("#banner", { state: "hidden", timeout: 60000 });
    await page.press("#input", "Enter");
    await assertAnswered(page);
    assert.equal(await page.isHidden("#composer-error"), true);

    // The chat server itself stops: no browser error text; the message is kept and
    // goes out by itself once the server is back.
    await ui5.stop();
    await sendMessage(page, "And now?");
    await page.waitForSelector("#composer-error:not([hidden])");
    const kept = await page.textContent("#composer-error");
    assert.match(kept, /your message is kept and goes out as soon as the chat server is back/);
    assert.doesNotMatch(await page.textContent("body"), /Failed to fetch|NetworkError|TypeError/);
    assert.match(await page.textContent("#banner"), /The chat server is not answering/);
    await page.screenshot({ path: path.join(shots, "banner-chat-server-down.png") });
    ui5 = await startUi({ port: uiPort5, apiUrl: api5.url, keyFile: api5.keyFile, data: d });
    await page.waitForFunction(() => {
      const qs = [...document.querySelectorAll("article.message.user")].map((a) => a.textContent);
      return qs.includes("And now?");
    }, null, { timeout: 15000 });
    await assertAnswered(page);
    assert.equal(await page.inputValue("#input"), "");
    assert.equal(await page.isHidden("#composer-error"), true);
    assert.equal(await page.isHidden("#banner"), true);
  } finally {
    await context.close();
    await ui5.stop();
    await api5.stop();
  }
});

test("login keeps the name after a wrong password, hides the reset hint until asked, and says when logged out", async () => {
  const context = await chromium.newContext();
  const page = await context.newPage();
  await page.goto(ui.url + "/login");
  assert.equal(await page.isVisible("#forgot p"), false, "the server's reset hint waits behind its question");
  await page.click("#forgot summary");
  assert.match(await page.textContent("#forgot p"), /sandbox-ui user set NAME/);
  await page.fill('input[name="username"]', USER);
  await page.fill('input[name="password"]', "wrong-password");
  await Promise.all([page.waitForLoadState("load"), page.click('button[type="submit"]')]);
  assert.match(await page.textContent("#login-error"), /Wrong user name or password/);
  assert.equal(await page.inputValue('input[name="username"]'), USER, "the name is kept");
  assert.equal(await page.evaluate(() => document.activeElement.name), "password");
  await page.fill('input[name="password"]', PASSWORD);
  await Promise.all([page.waitForURL(ui.url + "/"), page.click('button[type="submit"]')]);
  await Promise.all([page.waitForURL(/\/login\?logged_out=1$/), page.click(".sidebar-foot button")]);
  assert.equal(await page.textContent("#logged-out"), "You are logged out.");
  await context.close();
});

test("search finds chats by title and by message text, shows where, and never runs what it shows", async () => {
  const { context, page } = await loggedInPage();
  await setMaxTokens(page, 6);
  // The title comes from the first line: the word searched for is on the second.
  await page.fill("#input", "Islands, please.\nTell me about the Zanzibar archipelago <img src=x onerror=window.__pwned=1>.");
  await page.press("#input", "Enter");
  await assertAnswered(page);
  const zanzibar = new URL(page.url()).pathname;
  await page.goto(ui.url + "/");
  await setMaxTokens(page, 6);
  await sendMessage(page, "A question on kelp.");
  await assertAnswered(page);
  page.removeAllListeners("dialog");
  page.once("dialog", (d) => d.accept("Seaweed notes"));
  await page.click("#conversation-list li.active .rename");
  await page.waitForFunction(() => document.getElementById("chat-title").textContent === "Seaweed notes");

  // By message text, case aside: the hit shows the words around the match, marked.
  await page.fill("#search", "ZANZIBAR");
  await page.waitForSelector("#search-results:not([hidden]) a");
  assert.equal(await page.isHidden("#conversations"), true, "the results replace the list");
  const hits = page.locator("#search-results a");
  assert.equal(await hits.count(), 1);
  assert.equal(await hits.first().getAttribute("href"), zanzibar);
  assert.equal(await page.textContent("#search-results .hit-title"), "Islands, please.");
  assert.match(await page.textContent("#search-results .hit-snippet"), /Tell me about the Zanzibar archipelago <img src=x onerror/);
  assert.equal(await page.textContent("#search-results mark"), "Zanzibar");
  assert.equal(await page.locator("#search-results img").count(), 0, "the snippet is text, not HTML");
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  await page.screenshot({ path: path.join(shots, "search-results.png") });

  // By title; nothing found says so; Escape brings the list back.
  await page.fill("#search", "seaweed");
  await page.waitForFunction(() => document.querySelector("#search-results .hit-title")?.textContent === "Seaweed notes");
  await page.fill("#search", "no-such-words-anywhere");
  await page.waitForFunction(() => /No chats match “no-such-words-anywhere”/.test(document.getElementById("search-results").textContent));
  await page.press("#search", "Escape");
  assert.equal(await page.isVisible("#conversations"), true);
  assert.equal(await page.isHidden("#search-results"), true);

  await context.close();
});

test("a text file attached to a message goes into it; a binary or too large file is refused with the numbers", async () => {
  const { context, page } = await loggedInPage();
  await setMaxTokens(page, 6);
  // Refusals first: nothing is attached, and the box says why.
  await page.setInputFiles("#attach", { name: "photo.png", mimeType: "image/png", buffer: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0xff, 0xfe, 0x00, 0x01]) });
  await page.waitForSelector("#composer-error:not([hidden])");
  assert.equal(await page.textContent("#composer-error"), "photo.png is not a text file (only text: code, Markdown, CSV, plain text).");
  // (Files are read asynchronously: each step waits for the page to show the result.)
  await page.setInputFiles("#attach", { name: "huge.txt", mimeType: "text/plain", buffer: Buffer.alloc(500 * 1024, "a") });
  await page.waitForFunction(() => /^huge\.txt is 500 KB; a message holds at most 100,000 characters/.test(document.getElementById("composer-error").textContent));
  await page.setInputFiles("#attach", { name: "big.txt", mimeType: "text/plain", buffer: Buffer.alloc(150000, "b") });
  await page.waitForSelector("#attachments:not([hidden])");
  await page.fill("#input", "Summarise.");
  await page.press("#input", "Enter");
  assert.match(await page.textContent("#composer-error"), /^With its files the message has 150,0\d\d characters; a message holds at most 100,000\./);
  await page.click(".remove-attachment");
  assert.equal(await page.isHidden("#attachments"), true);

  // A CSV: listed by name and size, then sent as part of the message, in a block.
  await page.setInputFiles("#attach", { name: "prices.csv", mimeType: "text/csv", buffer: Buffer.from("fruit,price\napple,3\npear,```5\n") });
  await page.waitForSelector("#attachments:not([hidden])");
  assert.match(await page.textContent("#attachments"), /prices\.csv \(30 characters\)/);
  await page.fill("#input", "Which fruit is cheapest?");
  await page.screenshot({ path: path.join(shots, "attachment.png") });
  await page.press("#input", "Enter");
  await assertAnswered(page);
  const question = page.locator("article.message.user").last();
  assert.match(await question.textContent(), /Which fruit is cheapest\?/);
  assert.match(await question.locator("pre").textContent(), /fruit,price\napple,3\npear,```5/);
  assert.equal(await page.isHidden("#attachments"), true, "sent files leave the box");
  const id = new URL(page.url()).pathname.split("/").pop();
  const json = await (await page.request.get(`${ui.url}/c/${id}/export.json`)).json();
  assert.equal(json.messages[0].content, "Which fruit is cheapest?\n\nFile prices.csv:\n````csv\nfruit,price\napple,3\npear,```5\n````");
  await context.close();
});

test("Regenerate keeps the earlier answers: ‹ 2/3 › moves between them, stored, exported, and the chat goes on from the one shown", async () => {
  const { context, page } = await loggedInPage();
  await setMaxTokens(page, 6);
  // Sampled (the default temperature), so each version differs in practice; the test
  // only relies on what was stored for each.
  await sendMessage(page, "Name an animal.");
  await assertAnswered(page);
  const raw = () => page.evaluate(() => [...document.querySelectorAll("article.message.assistant")].pop()._raw);
  const texts = [await raw()];
  for (let i = 0; i < 2; i++) {
    await page.click("article.message.assistant .regenerate");
    await page.waitForFunction(() => [...document.querySelectorAll("article.message.assistant")].pop().dataset.status === "streaming");
    await assertAnswered(page);
    texts.push(await raw());
  }
  assert.equal(await page.locator("article.message").count(), 2, "versions, not new messages");
  assert.equal(await page.textContent(".version-label"), "3 / 3");
  assert.equal(await page.isDisabled(".version-next"), true);
  await page.click(".version-prev");
  await page.waitForFunction(() => document.querySelector(".version-label")?.textContent === "2 / 3");
  assert.equal(await raw(), texts[1]);
  await page.screenshot({ path: path.join(shots, "answer-versions.png") });

  // Stored: a reload shows the version chosen; the export holds all three.
  await page.reload();
  assert.equal(await page.textContent(".version-label"), "2 / 3");
  assert.equal(await raw(), texts[1]);
  const id = new URL(page.url()).pathname.split("/").pop();
  const json = await (await page.request.get(`${ui.url}/c/${id}/export.json`)).json();
  const answer = json.messages[1];
  assert.equal(answer.content, texts[1]);
  assert.equal(answer.version, 1);
  assert.deepEqual(answer.versions.map((v) => v.content), [texts[0], texts[2]]);
  const markdown = await (await page.request.get(`${ui.url}/c/${id}/export.md`)).text();
  assert.match(markdown, /\*\*Assistant\*\* \(version 2 of 3; all are in the JSON export\)/);

  // Going on: the next question follows the version shown; the versions stay with it.
  await page.click(".version-prev");
  await page.waitForFunction(() => document.querySelector(".version-label")?.textContent === "1 / 3");
  await sendMessage(page, "And another?");
  await assertAnswered(page);
  const after = await (await page.request.get(`${ui.url}/c/${id}/export.json`)).json();
  assert.equal(after.messages.length, 4);
  assert.equal(after.messages[1].content, texts[0]);
  assert.equal(after.messages[1].versions.length, 2);
  assert.equal(await page.locator(".version-label").count(), 0, "only the last answer offers versions");
  await context.close();
});

test("at phone width the Export menu is there and downloads the chat", async () => {
  const { context, page } = await loggedInPage({ viewport: { width: 390, height: 800 } });
  await setMaxTokens(page, 8);
  await sendMessage(page, "Name a colour.");
  await assertAnswered(page);
  assert.ok(await page.isVisible("#export-menu summary"), "Export shows at 390 px");
  await page.click("#export-menu summary");
  await page.screenshot({ path: path.join(shots, "phone-export-menu.png") });
  const [md] = await Promise.all([page.waitForEvent("download"), page.click("#export-md")]);
  assert.match(readFileSync(await md.path(), "utf8"), /Name a colour\./);
  assert.equal(await page.getAttribute("#export-menu", "open"), null, "the menu closes after a choice");
  await page.click("#export-menu summary");
  const [json] = await Promise.all([page.waitForEvent("download"), page.click("#export-json")]);
  assert.equal(JSON.parse(readFileSync(await json.path(), "utf8")).messages.length, 2);
  assert.equal(await page.textContent("#export-json"), "JSON (.json)");
  await context.close();
});

test("the banner shows the model download's progress, then the chat works", async () => {
  const hub = await fakeHub(tinyMistral, 1_000_000);
  const hfHome = dataDir("hf");
  const downloading = await startApi({
    port: await freePort(), key: KEY, env: { HF_ENDPOINT: hub.url, HF_HOME: hfHome },
    args: ["--hf-repo", "org/tiny-GGUF", "--hf-file", "tiny.gguf"],
  });
  const d = dataDir("download");
  createUser(d, USER, PASSWORD);
  const ui6 = await startUi({ port: await freePort(), apiUrl: downloading.url, keyFile: downloading.keyFile, data: d });
  try {
    const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await login(page, ui6.url, USER, PASSWORD);
    await page.waitForFunction(() => /Downloading the model: \d+ %/.test(document.getElementById("banner").textContent));
    const seen = new Set();
    while (await page.locator("#banner").isVisible()) {
      const m = /(\d+) %/.exec(await page.textContent("#banner"));
      if (m) seen.add(Number(m[1]));
      if (seen.size === 2) await page.screenshot({ path: path.join(shots, "banner-downloading.png") });
      await sleep(200);
    }
    const percents = [...seen];
    assert.ok(percents.length >= 2, `progress moved: ${percents}`);
    assert.deepEqual(percents, [...percents].sort((a, b) => a - b));
    await setMaxTokens(page, 8);
    await sendMessage(page, "Hello after the download");
    await assertAnswered(page);
    await context.close();
  } finally {
    await ui6.stop();
    await downloading.stop();
    hub.stop();
  }
});

test("history survives a reload, a restart of both services and a fresh browser", async () => {
  const { context, page } = await loggedInPage();
  await setMaxTokens(page, 48);
  await sendMessage(page, "Remember the word pineapple.");
  await assertAnswered(page);
  const address = page.url();
  const answer = await (await lastAnswer(page)).locator(".md").innerText();
  await page.reload();
  assert.equal(await (await lastAnswer(page)).locator(".md").innerText(), answer);
  await context.close();

  await ui.stop();
  await api.stop();
  api = await startApi({ port: apiPort, key: KEY });
  ui = await startUi({ port: uiPort, apiUrl: api.url, keyFile: api.keyFile, data });
  await apiReady(api);

  const fresh = await loggedInPage();
  const link = fresh.page.locator("#conversation-list .conv-link", { hasText: "Remember the word pineapple." });
  await Promise.all([fresh.page.waitForURL(address), link.first().click()]);
  assert.equal(await fresh.page.locator("article.message.user .md").first().innerText(), "Remember the word pineapple.");
  assert.equal(await (await lastAnswer(fresh.page)).locator(".md").innerText(), answer);
  await fresh.context.close();
});

test("the password can be changed in the UI; other browsers are logged out", async () => {
  const other = await loggedInPage();
  const { context, page } = await loggedInPage();
  await page.goto(ui.url + "/settings");
  await page.fill('input[name="current"]', PASSWORD);
  await page.fill('input[name="new"]', "a-new-password");
  await page.fill('input[name="confirm"]', "a-new-password");
  await page.click("form[action='/settings/password'] button");
  assert.match(await page.textContent(".notice"), /Password changed/);
  await other.page.goto(ui.url + "/");
  assert.equal(new URL(other.page.url()).pathname, "/login", "the other browser's session ended");
  await page.click(".logout-form button");
  assert.equal(new URL(page.url()).pathname, "/login");
  await login(page, ui.url, USER, "a-new-password");
  assert.equal(new URL(page.url()).pathname, "/");
  // Put the original back for any later run against the same data.
  await page.goto(ui.url + "/settings");
  await page.fill('input[name="current"]', "a-new-password");
  await page.fill('input[name="new"]', PASSWORD);
  await page.fill('input[name="confirm"]', PASSWORD);
  await page.click("form[action='/settings/password'] button");
  await context.close();
  await other.context.close();
});

test("failed logins are rate-limited", async () => {
  // Its own UI: the limit counts per address, and every test comes from 127.0.0.1.
  const d = dataDir("limit");
  createUser(d, USER, PASSWORD);
  const ui5 = await startUi({ port: await freePort(), apiUrl: api.url, keyFile: api.keyFile, data: d });
  const context = await chromium.newContext();
  const page = await context.newPage();
  const statuses = [];
  for (let i = 0; i < 6; i++) {
    await page.goto(ui5.url + "/login");
    await page.fill('input[name="username"]', "someone-else");
    await page.fill('input[name="password"]', "guess-" + i);
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/login") && r.request().method() === "POST"),
      page.click('button[type="submit"]'),
    ]);
    statuses.push(resp.status());
  }
  assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
  assert.equal(statuses[5], 429);
  assert.match(await page.textContent("#login-error"), /Too many failed logins\. Try again in \d+ s/);
  // The right password from the same address waits too: guessing cannot continue.
  await page.fill('input[name="username"]', USER);
  await page.fill('input[name="password"]', PASSWORD);
  await page.click('button[type="submit"]');
  assert.match(await page.textContent("#login-error"), /Too many failed logins/);
  await context.close();
  await ui5.stop();
});

test("the administrator's page: status panel, and accounts added, reset and removed; each account sees only its own chats", async () => {
  const { context, page } = await loggedInPage();
  await setMaxTokens(page, 24);
  await sendMessage(page, "Name a colour.");
  await assertAnswered(page);
  const adminChat = new URL(page.url()).pathname;
  const adminTitle = await page.locator("#conversation-list li.active .conv-link").innerText();

  await page.click("#admin-link");
  assert.equal(new URL(page.url()).pathname, "/admin");
  // The status panel, from the API's /ready (with the key) and /metrics.
  assert.match(await page.textContent("#status-model"), /^smollm2/);
  assert.equal(await page.textContent("#status-file"), "smollm2-135m-instruct.gguf");
  assert.equal(await page.textContent("#status-quant"), "Q4_1");
  assert.match(await page.textContent("#status-context"), /^\d+ tokens$/);
  assert.match(await page.textContent("#status-gpu"), /none: the model runs on the CPU/);
  assert.match(await page.textContent("#status-queue"), /waiting \(room for \d+\)/);
  assert.ok((await page.locator("#recent-answers tbody tr").count()) >= 1, "the last answers are listed");
  assert.match(await page.locator("#recent-answers tbody tr").first().innerText(), /\d+\s+[\d.]+\s+\d+ ms\s+\d+ ms/);

  // A new account with a password made here, shown once.
  await page.fill('#add-user input[name="name"]', "bob");
  await Promise.all([page.waitForLoadState("load"), page.click('#add-user button[type="submit"]')]);
  const bobPassword = (await page.textContent("#new-password")).trim();
  assert.match(bobPassword, /^[0-9a-f]{16}$/);
  assert.match(await page.textContent(".notice[role=status]"), /The account bob was created/);
  await page.screenshot({ path: path.join(shots, "admin-page.png"), fullPage: true });
  await page.fill('#add-user input[name="name"]', "bob");
  await Promise.all([page.waitForLoadState("load"), page.click('#add-user button[type="submit"]')]);
  assert.match(await page.textContent("[role=alert]"), /There is already an account named bob/);
  await page.fill('#add-user input[name="name"]', "carol");
  await page.fill('#add-user input[name="password"]', "short");
  await Promise.all([page.waitForLoadState("load"), page.click('#add-user button[type="submit"]')]);
  assert.match(await page.textContent("[role=alert]"), /at least 8 characters/);
  assert.equal(await page.locator('tr[data-user="carol"]').count(), 0);
  assert.equal(await page.locator(`tr[data-user="${USER}"] .remove`).count(), 0, "no removing oneself");

  // Bob sees none of the admin's chats, cannot open them or this page, and has his own.
  const bob = await chromium.newContext();
  const bobPage = await bob.newPage();
  await login(bobPage, ui.url, "bob", bobPassword);
  assert.equal(new URL(bobPage.url()).pathname, "/");
  assert.equal(await bobPage.locator("#conversation-list .conv-link").count(), 0);
  assert.equal(await bobPage.locator("#admin-link").count(), 0);
  const forbidden = await bobPage.goto(ui.url + "/admin");
  assert.equal(forbidden.status(), 403);
  assert.match(await bobPage.textContent("body"), /only an administrator can open this page/i);
  await bobPage.screenshot({ path: path.join(shots, "admin-forbidden.png") });
  assert.equal((await bobPage.goto(ui.url + adminChat)).status(), 404);
  await bobPage.goto(ui.url + "/");
  await setMaxTokens(bobPage, 24);
  await sendMessage(bobPage, "Bob's own question.");
  await assertAnswered(bobPage);
  assert.deepEqual(await bobPage.locator("#conversation-list .conv-link").allInnerTexts(), ["Bob's own question."]);
  await page.goto(ui.url + "/");
  const adminTitles = await page.locator("#conversation-list .conv-link").allInnerTexts();
  assert.ok(adminTitles.includes(adminTitle) && !adminTitles.includes("Bob's own question."), adminTitles.join(" | "));

  // A reset password logs bob out and the new one works.
  await page.goto(ui.url + "/admin");
  assert.match(await page.locator('tr[data-user="bob"]').innerText(), /\b1\b/, "bob has one chat");
  await Promise.all([page.waitForLoadState("load"), page.click('tr[data-user="bob"] button.reset')]);
  const newPassword = (await page.textContent("#new-password")).trim();
  assert.notEqual(newPassword, bobPassword);
  await bobPage.reload();
  assert.equal(new URL(bobPage.url()).pathname, "/login", "bob's browser was logged out");
  await login(bobPage, ui.url, "bob", bobPassword);
  assert.equal(new URL(bobPage.url()).pathname, "/login", "the old password no longer works");
  await login(bobPage, ui.url, "bob", newPassword);
  assert.equal(new URL(bobPage.url()).pathname, "/");

  // Removing bob takes his chats and logins with him.
  await page.click('tr[data-user="bob"] .remove summary');
  await Promise.all([page.waitForLoadState("load"), page.click('tr[data-user="bob"] .remove button')]);
  assert.match(await page.textContent(".notice[role=status]"), /The account bob and its chats were removed/);
  assert.equal(await page.locator('tr[data-user="bob"]').count(), 0);
  await bobPage.reload();
  assert.equal(new URL(bobPage.url()).pathname, "/login");
  await login(bobPage, ui.url, "bob", newPassword);
  assert.equal(new URL(bobPage.url()).pathname, "/login");
  await bob.close();

  // At phone width the page fits the screen: nothing wider than it.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(ui.url + "/admin");
  assert.ok(await page.isVisible("#status-panel") && await page.isVisible("#add-user"));
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), "no sideways scrolling");
  await page.screenshot({ path: path.join(shots, "admin-page-phone.png"), fullPage: true });
  await context.close();
});
