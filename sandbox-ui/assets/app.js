// The chat page: sending and streaming, stop, regenerate and edit, the sidebar,
// per-chat settings, and the model-state banner. History lives on the server; this
// file only shows it.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const md = window.SandboxMarkdown;
  const chat = $("chat");
  const messages = $("messages");
  const input = $("input");
  const sendButton = $("send");
  const stopButton = $("stop");
  const queueNote = $("queue-note");
  const composerError = $("composer-error");

  let conversation = chat.dataset.conversation || null;
  let busy = false;
  let editing = false;
  let pendingSettings = null;

  // ---- helpers --------------------------------------------------------------

  // What the page says when the chat server itself cannot be reached (the browser's
  // own words, "Failed to fetch" and the like, mean nothing to a chat user).
  const CHAT_SERVER_DOWN = "The chat server is not answering. It restarts by itself; this page reconnects as soon as it is back.";

  // A failed request: `offline` when the chat server could not be reached at all,
  // `status` when it answered with an error.
  function failure(message, fields) {
    return Object.assign(new Error(message), fields);
  }

  async function post(path, body) {
    let resp;
    try {
      resp = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body || {}),
      });
    } catch (_) {
      throw failure(CHAT_SERVER_DOWN, { offline: true });
    }
    if (resp.status === 401) { toLogin(); throw failure("Your session has ended.", { status: 401 }); }
    if (!resp.ok) throw failure(await errorText(resp), { status: resp.status });
    return resp;
  }

  async function errorText(resp) {
    try {
      const body = await resp.json();
      return (body.error && body.error.message) || resp.statusText;
    } catch (_) {
      return "The chat server answered " + resp.status + ".";
    }
  }

  function toLogin() {
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
  }

  function showError(text) {
    composerError.textContent = text || "";
    composerError.hidden = !text;
  }

  function nearBottom() {
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 120;
  }

  function scrollDown(force) {
    if (force || nearBottom()) messages.scrollTop = messages.scrollHeight;
  }

  // ---- messages -------------------------------------------------------------

  function setText(article, text) {
    article._raw = text;
    const box = article.querySelector(".md");
    try {
      box.replaceChildren(md.render(text));
    } catch (_) {
      box.textContent = text; // never lose the text to a rendering problem
    }
  }

  // Re-rendering Markdown per token is wasteful; once per frame is what the eye sees.
  function scheduleRender(article) {
    if (article._pending) return;
    article._pending = true;
    requestAnimationFrame(() => {
      article._pending = false;
      const stick = nearBottom();
      setText(article, article._raw);
      if (stick) scrollDown(true);
    });
  }

  function addMessage(role, text, status) {
    const a = document.createElement("article");
    a.className = "message " + role;
    a.dataset.status = status || "complete";
    const box = document.createElement("div");
    box.className = "md";
    a.appendChild(box);
    messages.appendChild(a);
    setText(a, text || "");
    return a;
  }

  function setStatus(article, status, error) {
    article.dataset.status = status;
    article.querySelectorAll(".status-note, .typing" + (status === "streaming" ? ", .answer-details" : "")).forEach((n) => n.remove());
    const notes = { stopped: "Stopped.", truncated: "The answer was cut off at its length limit." };
    if (status in notes || status === "failed") {
      const note = document.createElement("p");
      note.className = "status-note" + (status === "failed" ? " error-text" : "");
      note.textContent = notes[status] || error || "The answer failed.";
      article.appendChild(note);
    }
  }

  // How an answer was made (the API's own timings), in one quiet line under it.
  function showDetails(article, d) {
    article.querySelectorAll(".answer-details").forEach((n) => n.remove());
    if (!d) return;
    const parts = [d.tokens + (d.tokens === 1 ? " token" : " tokens")];
    if (d.tokens_per_second > 0) parts.push(d.tokens_per_second.toFixed(1) + " tokens/s");
    parts.push("first token after " + (d.first_token_ms / 1000).toFixed(2) + " s");
    if (d.queue_ms >= 100) parts.push("waited " + (d.queue_ms / 1000).toFixed(1) + " s in the queue");
    parts.push(d.finish_reason === "length" ? "stopped by the length limit" : "ended by the model");
    const p = document.createElement("p");
    p.className = "answer-details";
    p.textContent = parts.join(" · ");
    p.title = d.prompt_tokens + " prompt tokens read (the rest came from the model's cache)";
    article.appendChild(p);
  }

  function lastOf(role) {
    const all = messages.querySelectorAll("article.message." + role);
    return all.length ? all[all.length - 1] : null;
  }

  function refreshActions() {
    messages.querySelectorAll(".actions").forEach((n) => n.remove());
    if (busy) return;
    const last = messages.querySelector("article.message:last-of-type");
    const lastUser = lastOf("user");
    if (last && last.classList.contains("assistant")) {
      if (last.dataset.status === "truncated" || last.dataset.status === "stopped") {
        addAction(last, "Continue", "continue", () => send("continue"));
      }
      addAction(last, "Regenerate", "regenerate", () => send("regenerate"));
      const count = Number(last.dataset.versions || 1);
      if (count > 1) {
        const at = Number(last.dataset.version || 0);
        const prev = addAction(last, "‹", "version-prev", () => showVersion(last, at - 1));
        prev.disabled = at === 0;
        prev.setAttribute("aria-label", "Previous version");
        const label = document.createElement("span");
        label.className = "version-label";
        label.textContent = (at + 1) + " / " + count;
        last.querySelector(".actions").appendChild(label);
        const next = addAction(last, "›", "version-next", () => showVersion(last, at + 1));
        next.disabled = at === count - 1;
        next.setAttribute("aria-label", "Next version");
      }
      addAction(last, "Copy", "copy-answer", async (b) => {
        await md.copyText(last._raw || "");
        b.textContent = "Copied";
        setTimeout(() => { b.textContent = "Copy"; }, 1500);
      });
    }
    if (lastUser) {
      addAction(lastUser, "Edit", "edit", () => startEdit(lastUser));
    }
  }

  function addAction(article, label, cls, onClick) {
    let bar = article.querySelector(".actions");
    if (!bar) {
      bar = document.createElement("div");
      bar.className = "actions";
      article.appendChild(bar);
    }
    const b = document.createElement("button");
    b.type = "button";
    b.className = "small " + cls;
    b.textContent = label;
    b.addEventListener("click", () => onClick(b));
    bar.appendChild(b);
    return b;
  }

  // Shows another version of the last answer (the chat goes on from the one shown).
  async function showVersion(article, index) {
    showError("");
    try {
      const resp = await post("/app/c/" + conversation + "/version", { seq: Number(article.dataset.seq), index: index });
      const v = await resp.json();
      article.dataset.version = v.version;
      article.dataset.versions = v.versions;
      setText(article, v.content);
      setStatus(article, v.status, v.error);
      showDetails(article, v.details);
      refreshActions();
    } catch (e) {
      showError(e.offline ? CHAT_SERVER_DOWN : e.message);
    }
  }

  function startEdit(article) {
    editing = true;
    input.value = article._raw || "";
    autosize();
    input.focus();
    queueNote.textContent = "Editing your last question: Send resends it, Esc cancels.";
    queueNote.hidden = false;
  }

  function stopEditing() {
    editing = false;
    queueNote.hidden = true;
  }

  // ---- sending and streaming ------------------------------------------------

  function setBusy(on) {
    busy = on;
    sendButton.hidden = on;
    stopButton.hidden = !on;
    stopButton.disabled = false;
    refreshActions();
  }

  function showQueue(position) {
    queueNote.hidden = false;
    queueNote.textContent = position > 0
      ? position + (position === 1 ? " request" : " requests") + " ahead of you…"
      : "Waiting for the model…";
  }

  function onStart(ev, answer) {
    answer.dataset.seq = ev.assistant_seq;
    answer.dataset.versions = ev.versions;
    answer.dataset.version = ev.versions - 1;
    const isNew = conversation !== String(ev.conversation);
    conversation = String(ev.conversation);
    chat.dataset.conversation = conversation;
    $("chat-title").textContent = ev.title;
    document.title = ev.title + " · AI Sandbox";
    if (isNew) {
      history.replaceState(null, "", "/c/" + conversation);
      addExportLinks();
    }
    sidebarTop(conversation, ev.title);
  }

  async function follow(resp, answer) {
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let done = false;
    answer._raw = answer._raw || "";
    try {
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const chunk = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of chunk.split("\n")) {
            if (!line.startsWith("data: ")) continue;
            const ev = JSON.parse(line.slice(6));
            if (ev.type === "start") onStart(ev, answer);
            else if (ev.type === "snapshot") { answer._raw = ev.content; scheduleRender(answer); }
            else if (ev.type === "queued") showQueue(ev.position);
            else if (ev.type === "delta") {
              queueNote.hidden = true;
              answer._raw += ev.text;
              scheduleRender(answer);
            } else if (ev.type === "done") {
              done = true;
              setText(answer, answer._raw);
              setStatus(answer, ev.status, ev.error);
              showDetails(answer, ev.details);
            }
          }
        }
      }
    } catch (_) {
      // The connection broke; handled below.
    }
    if (!done) {
      setStatus(answer, "failed", "The connection to the chat server was lost. The answer may still be written on the server: reload the page to see it.");
    }
    queueNote.hidden = true;
    setBusy(false);
    scrollDown(false);
  }

  function typing(article) {
    const t = document.createElement("p");
    t.className = "typing";
    t.setAttribute("aria-label", "The model is writing");
    t.textContent = "●●●";
    article.appendChild(t);
  }

  // ---- attachments ----------------------------------------------------------

  // The most text one message holds (sandbox-ui's MAX_MESSAGE_CHARS); files go into it.
  const MAX_MESSAGE_CHARS = 100000;
  const attachInput = $("attach");
  const attachmentList = $("attachments");
  let attachments = []; // { name, text }
  let reading = 0; // files still being read

  function showAttachments() {
    attachmentList.replaceChildren();
    attachments.forEach((a, i) => {
      const li = document.createElement("li");
      li.append(a.name + " (" + a.text.length.toLocaleString("en") + " characters)");
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove-attachment";
      remove.setAttribute("aria-label", "Remove " + a.name);
      remove.textContent = "✕";
      remove.addEventListener("click", () => { attachments.splice(i, 1); showAttachments(); });
      li.appendChild(remove);
      attachmentList.appendChild(li);
    });
    attachmentList.hidden = attachments.length === 0;
  }

  // A file's text, or why it cannot go into a message.
  async function readTextFile(file) {
    if (file.size > 4 * MAX_MESSAGE_CHARS) {
      throw new Error(file.name + " is " + (file.size / 1024).toFixed(0) + " KB; a message holds at most " +
        MAX_MESSAGE_CHARS.toLocaleString("en") + " characters, so attach a smaller file or an excerpt.");
    }
    const bytes = new Uint8Array(await file.arrayBuffer());
    let text;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch (_) {
      throw new Error(file.name + " is not a text file (only text: code, Markdown, CSV, plain text).");
    }
    if (text.includes("\u0000")) throw new Error(file.name + " is not a text file (only text: code, Markdown, CSV, plain text).");
    return text;
  }

  attachInput.addEventListener("change", async () => {
    showError("");
    const files = [...attachInput.files];
    reading += files.length;
    for (const file of files) {
      try {
        attachments.push({ name: file.name, text: await readTextFile(file) });
      } catch (e) {
        showError(e.message);
      } finally {
        reading--;
      }
    }
    attachInput.value = "";
    showAttachments();
  });

  // The message as the model reads it: the typed text, then each file in a fenced
  // block (a fence longer than any run of backticks in the file) under its name.
  function withAttachments(text) {
    const parts = [text.trim()];
    for (const a of attachments) {
      const longest = Math.max(2, ...(a.text.match(/`+/g) || []).map((m) => m.length));
      const fence = "`".repeat(longest + 1);
      const lang = (a.name.match(/\.([A-Za-z0-9]+)$/) || [, ""])[1].toLowerCase();
      parts.push("File " + a.name + ":\n" + fence + lang + "\n" + a.text.replace(/\n$/, "") + "\n" + fence);
    }
    return parts.filter(Boolean).join("\n\n");
  }

  async function send(action) {
    if (busy) return;
    if (reading) return showError("Still reading the attached file; send again in a moment.");
    if ((action === "send" || action === "edit") && attachments.length) {
      const full = withAttachments(input.value);
      if (full.length > MAX_MESSAGE_CHARS) {
        showError("With its files the message has " + full.length.toLocaleString("en") + " characters; a message holds at most " +
          MAX_MESSAGE_CHARS.toLocaleString("en") + ". Remove a file or attach an excerpt.");
        return;
      }
      input.value = full;
      attachments = [];
      showAttachments();
    }
    const text = input.value;
    if ((action === "send" || action === "edit") && !text.trim()) return;
    showError("");
    const body = { conversation: conversation, action: action };
    const answering = action === "send" || action === "edit";
    if (answering) body.content = text;
    if (!conversation && pendingSettings) body.settings = pendingSettings;

    // Show the exchange at once; the server stores the question before the model sees it.
    const removed = [];
    if (action === "regenerate") {
      const last = lastOf("assistant");
      if (last && last === messages.querySelector("article.message:last-of-type")) { removed.push(last); last.remove(); }
    } else if (action === "edit") {
      const lastUser = lastOf("user");
      let n = lastUser;
      while (n) { const next = n.nextElementSibling; removed.push(n); n.remove(); n = next; }
    }
    let question = null;
    if (answering) {
      question = addMessage("user", text);
      input.value = "";
      autosize();
    }
    stopEditing();
    // Continue goes on in the same answer.
    const continued = action === "continue" ? lastOf("assistant") : null;
    const before = continued && continued.dataset.status;
    const answer = continued || addMessage("assistant", "", "streaming");
    if (continued) setStatus(continued, "streaming");
    typing(answer);
    setBusy(true);
    scrollDown(true);

    let resp;
    try {
      resp = await post("/app/chat", body);
    } catch (e) {
      if (continued) setStatus(continued, before); else answer.remove();
      if (question) { question.remove(); input.value = text; autosize(); }
      removed.forEach((n) => messages.appendChild(n));
      setBusy(false);
      notSent(e, action, text);
      return;
    }
    pendingSettings = null;
    await follow(resp, answer);
  }

  // Says once, in plain words, why nothing was sent. The model's state is the banner's
  // to tell (refreshed now), so the box only says what became of the message; when the
  // chat server itself is down, the message goes out by itself once it is back.
  function notSent(e, action, text) {
    if (e.offline) {
      showBanner({ state: "unreachable", headline: CHAT_SERVER_DOWN });
      showError(answeringAction(action)
        ? "Not sent yet: your message is kept and goes out as soon as the chat server is back."
        : "Not done yet: it is tried again as soon as the chat server is back.");
      whenBack(() => {
        showError("");
        if (answeringAction(action) && input.value !== text) return; // the user changed it
        send(action);
      });
    } else if (e.status === 503) {
      pollStatus(true);
      showError(answeringAction(action)
        ? "Not sent: your message is still in the box. Send it again once the model is ready (see above)."
        : "Not done: try again once the model is ready (see above).");
    } else {
      showError(e.message);
    }
  }

  function answeringAction(action) { return action === "send" || action === "edit"; }

  // Calls `then` once the chat server answers again (checked every second).
  function whenBack(then) {
    const check = async () => {
      try {
        const r = await fetch("/health", { cache: "no-store" });
        if (r.ok) { pollStatus(true); then(); return; }
      } catch (_) { /* still down */ }
      setTimeout(check, 1000);
    };
    setTimeout(check, 1000);
  }

  async function stop() {
    if (!conversation) return;
    stopButton.disabled = true;
    try {
      await post("/app/c/" + conversation + "/stop");
    } catch (e) {
      showError(e.message);
      stopButton.disabled = false;
    }
  }

  // A page opened while an answer is being written follows it.
  async function attach() {
    const answer = lastOf("assistant");
    if (!answer) return;
    answer._raw = "";
    answer.querySelectorAll(".status-note").forEach((n) => n.remove());
    typing(answer);
    setBusy(true);
    let resp;
    try {
      resp = await fetch("/app/c/" + conversation + "/stream");
    } catch (_) {
      setStatus(answer, "failed", CHAT_SERVER_DOWN + " Reload the page then to see the answer.");
      setBusy(false);
      return;
    }
    if (!resp.ok) { setBusy(false); return; }
    await follow(resp, answer);
  }

  // ---- composer -------------------------------------------------------------

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 240) + "px";
  }

  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    send(editing ? "edit" : "send");
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send(editing ? "edit" : "send");
    } else if (e.key === "Escape" && editing) {
      stopEditing();
      input.value = "";
      autosize();
    }
  });
  input.addEventListener("input", autosize);
  stopButton.addEventListener("click", stop);

  // ---- sidebar --------------------------------------------------------------

  const list = $("conversation-list");

  function sidebarTop(id, title) {
    let li = list.querySelector('li[data-id="' + id + '"]');
    const empty = list.querySelector("li.empty");
    if (empty) empty.remove();
    if (!li) {
      li = document.createElement("li");
      li.dataset.id = id;
      const a = document.createElement("a");
      a.className = "conv-link";
      a.href = "/c/" + id;
      li.appendChild(a);
      const actions = document.createElement("span");
      actions.className = "conv-actions";
      for (const [cls, label, glyph] of [["rename", "Rename", "✎"], ["delete", "Delete", "✕"]]) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "icon " + cls;
        b.title = label;
        b.setAttribute("aria-label", label);
        b.textContent = glyph;
        actions.appendChild(b);
      }
      li.appendChild(actions);
    }
    li.querySelector(".conv-link").textContent = title;
    list.querySelectorAll("li.active").forEach((n) => { n.classList.remove("active"); n.removeAttribute("aria-current"); });
    li.classList.add("active");
    li.setAttribute("aria-current", "page");
    list.prepend(li);
  }

  list.addEventListener("click", async (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    const li = button.closest("li");
    const id = li.dataset.id;
    const title = li.querySelector(".conv-link").textContent;
    try {
      if (button.classList.contains("rename")) {
        const name = prompt("New name for this chat:", title);
        if (name === null || !name.trim()) return;
        const resp = await post("/app/c/" + id + "/rename", { title: name });
        const body = await resp.json();
        li.querySelector(".conv-link").textContent = body.title;
        if (id === conversation) {
          $("chat-title").textContent = body.title;
          document.title = body.title + " · AI Sandbox";
        }
      } else if (button.classList.contains("delete")) {
        if (!confirm("Delete “" + title + "” and all its messages? This cannot be undone.")) return;
        await post("/app/c/" + id + "/delete");
        li.remove();
        if (id === conversation) location.href = "/";
      }
    } catch (err) {
      alert(err.message);
    }
  });


  // ---- search ---------------------------------------------------------------

  const searchBox = $("search");
  const results = $("search-results");
  const conversationsNav = $("conversations");
  let searchTimer = null;
  let searchSeq = 0;

  // `text` with each case-insensitive occurrence of `query` in a <mark>, built from
  // text nodes only (the snippet is stored model output: it must never become HTML).
  function highlighted(text, query) {
    const frag = document.createDocumentFragment();
    const lower = text.toLowerCase();
    const q = query.toLowerCase();
    let at = 0;
    for (let i = lower.indexOf(q); q && i >= 0; i = lower.indexOf(q, at)) {
      frag.append(text.slice(at, i));
      const m = document.createElement("mark");
      m.textContent = text.slice(i, i + q.length);
      frag.append(m);
      at = i + q.length;
    }
    frag.append(text.slice(at));
    return frag;
  }

  function showResults(query, hits) {
    results.replaceChildren();
    if (!hits.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "No chats match “" + query + "”.";
      results.appendChild(li);
    }
    for (const h of hits) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "/c/" + h.id;
      const title = document.createElement("span");
      title.className = "hit-title";
      title.append(highlighted(h.title, query));
      a.appendChild(title);
      if (h.snippet) {
        const s = document.createElement("span");
        s.className = "hit-snippet";
        s.append(highlighted(h.snippet, query));
        a.appendChild(s);
      }
      li.appendChild(a);
      results.appendChild(li);
    }
    results.hidden = false;
    conversationsNav.hidden = true;
  }

  function clearSearch() {
    results.hidden = true;
    results.replaceChildren();
    conversationsNav.hidden = false;
  }

  async function runSearch() {
    const query = searchBox.value.trim();
    const seq = ++searchSeq;
    if (!query) return clearSearch();
    try {
      const resp = await fetch("/app/search?q=" + encodeURIComponent(query), { cache: "no-store" });
      if (resp.status === 401) return toLogin();
      if (!resp.ok) throw failure(await errorText(resp), { status: resp.status });
      const body = await resp.json();
      if (seq === searchSeq) showResults(query, body.conversations);
    } catch (e) {
      if (seq !== searchSeq) return;
      results.replaceChildren();
      const li = document.createElement("li");
      li.className = "empty error-text";
      li.textContent = e.status ? e.message : CHAT_SERVER_DOWN;
      results.appendChild(li);
      results.hidden = false;
      conversationsNav.hidden = true;
    }
  }

  searchBox.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, 150);
  });
  searchBox.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { searchBox.value = ""; clearSearch(); }
  });

  function toggleSidebar(open) {
    document.body.classList.toggle("sidebar-open", open);
  }
  $("menu").addEventListener("click", () => toggleSidebar(!document.body.classList.contains("sidebar-open")));
  $("scrim").addEventListener("click", () => toggleSidebar(false));

  // A chat stored for the first time gets its Export menu.
  function addExportLinks() {
    const menu = $("export-menu");
    menu.hidden = false;
    $("export-md").href = "/c/" + conversation + "/export.md";
    $("export-json").href = "/c/" + conversation + "/export.json";
  }
  // The menu closes after a choice, and when the user clicks elsewhere.
  const exportMenu = $("export-menu");
  exportMenu.addEventListener("click", (e) => { if (e.target.closest("a")) exportMenu.open = false; });
  document.addEventListener("click", (e) => { if (!exportMenu.contains(e.target)) exportMenu.open = false; });

  // ---- per-chat settings ----------------------------------------------------

  const dialog = $("settings-dialog");
  const settingsForm = $("settings-form");
  const settingsError = $("settings-error");

  $("open-settings").addEventListener("click", () => { settingsError.hidden = true; dialog.showModal(); });
  $("settings-cancel").addEventListener("click", () => dialog.close());
  settingsForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = settingsForm.elements;
    const settings = {
      system_prompt: f.system_prompt.value,
      temperature: f.temperature.value === "" ? null : Number(f.temperature.value),
      max_tokens: f.max_tokens.value === "" ? null : Number(f.max_tokens.value),
    };
    if (!conversation) {
      pendingSettings = settings;
      dialog.close();
      return;
    }
    try {
      await post("/app/c/" + conversation + "/settings", settings);
      dialog.close();
    } catch (err) {
      settingsError.textContent = err.message;
      settingsError.hidden = false;
    }
  });

  // ---- model state ----------------------------------------------------------

  const banner = $("banner");

  function showBanner(s) {
    banner.replaceChildren();
    banner.className = "banner " + s.state;
    if (s.state === "ready") { banner.hidden = true; return; }
    const text = document.createElement("p");
    if (s.state === "downloading") {
      const pct = s.progress == null ? null : Math.floor(s.progress * 100);
      text.textContent = "Downloading the model" + (pct == null ? "…" : ": " + pct + " %") +
        ". You can chat as soon as it is ready." + (s.message ? " " + s.message : "");
      banner.appendChild(text);
      if (pct != null) {
        const bar = document.createElement("progress");
        bar.max = 100;
        bar.value = pct;
        banner.appendChild(bar);
      }
    } else if (s.state === "loading") {
      text.textContent = "Loading the model into memory… " + (s.message || "");
      banner.appendChild(text);
    } else {
      // error, unreachable: the headline is for a chat user; the server's own words,
      // when there are any, for an administrator.
      text.textContent = s.headline;
      banner.appendChild(text);
      if (s.message) {
        const details = document.createElement("details");
        const summary = document.createElement("summary");
        summary.textContent = "Details";
        const why = document.createElement("p");
        why.textContent = s.message;
        details.append(summary, why);
        banner.appendChild(details);
      }
    }
    banner.hidden = false;
  }

  // Asks for the model's state every `retry_seconds` (2 s while all is well, so an
  // outage shows at once); `now` asks at once, outside that rhythm.
  let pollTimer = null;
  async function pollStatus(now) {
    if (now && pollTimer) clearTimeout(pollTimer);
    let next = 2;
    try {
      const resp = await fetch("/app/status", { cache: "no-store" });
      if (resp.status === 401) return toLogin();
      if (resp.ok) {
        const s = await resp.json();
        showBanner(s);
        next = s.retry_seconds || 2;
      }
    } catch (_) {
      showBanner({ state: "unreachable", headline: CHAT_SERVER_DOWN });
    }
    pollTimer = setTimeout(pollStatus, next * 1000);
  }

  // ---- start ----------------------------------------------------------------

  md.installCopy(document);
  messages.querySelectorAll("article.message").forEach((a) => {
    setText(a, a.querySelector(".md").textContent);
    if (a.dataset.details) showDetails(a, JSON.parse(a.dataset.details));
  });
  refreshActions();
  scrollDown(true);
  pollStatus();
  if (chat.dataset.live === "true") attach();
  if (window.matchMedia("(min-width: 800px)").matches) input.focus();
})();
