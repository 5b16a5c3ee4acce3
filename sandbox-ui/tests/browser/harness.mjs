// Starts the real binaries (sandbox-api on the small test model, sandbox-ui) on free
// ports with throw-away data, and Debian's chromium through playwright-core.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, chmodSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "../../..");
const target = process.env.CARGO_TARGET_DIR || "/var/cache/ai-sandbox/target";
export const bin = (name) => path.join(target, "release", name);
export const model = path.join(repo, ".fixtures", "smollm2-135m-instruct.gguf");
export const tinyMistral = path.join(repo, ".fixtures", "tiny-mistral-v0.3.gguf");
export const shots = process.env.SCREENSHOT_DIR || path.join(here, "screenshots");
mkdirSync(shots, { recursive: true });

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

export async function waitFor(check, what, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? ": " + last.message : ""}`);
}

class Proc {
  constructor(name, args, env = {}) {
    this.name = name;
    this.args = args;
    this.env = env;
    this.log = "";
  }

  start() {
    this.child = spawn(bin(this.name), this.args, {
      env: { ...process.env, RUST_LOG: "info", ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.exited = new Promise((r) => this.child.on("exit", (code, signal) => r({ code, signal })));
    const keep = (d) => { this.log = (this.log + d.toString()).slice(-20000); };
    this.child.stdout.on("data", keep);
    this.child.stderr.on("data", keep);
    return this;
  }

  async stop(signal = "SIGTERM") {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode) return this.exited;
    this.child.kill(signal);
    return this.exited;
  }
}

export const dataDir = (label) => mkdtempSync(path.join(tmpdir(), `sandbox-ui-${label}-`));

export async function startApi({ port, key, args = [], env = {} }) {
  const dir = dataDir("api");
  const keyFile = path.join(dir, "key");
  writeFileSync(keyFile, key + "\n");
  chmodSync(keyFile, 0o600);
  const p = new Proc("sandbox-api", [
    "--listen", `127.0.0.1:${port}`, "--api-key-file", keyFile, "--model-id", "smollm2",
    ...(args.length ? args : ["--model", model]),
  ], env).start();
  p.url = `http://127.0.0.1:${port}`;
  p.keyFile = keyFile;
  await waitFor(async () => (await fetch(p.url + "/health")).ok, "sandbox-api to listen");
  return p;
}

export async function apiReady(api) {
  await waitFor(async () => (await fetch(api.url + "/ready")).ok, "the model to load", 60000);
}

export function createUser(data, name, password) {
  const r = spawnSync(bin("sandbox-ui"), ["user", "set", name, "--data-dir", data], { input: password + "\n" });
  if (r.status !== 0) throw new Error("user set failed: " + r.stderr);
}

export async function startUi({ port, apiUrl, keyFile, data }) {
  const p = new Proc("sandbox-ui", [
    "--listen", `127.0.0.1:${port}`, "--api-url", apiUrl, "--data-dir", data,
    ...(keyFile ? ["--api-key-file", keyFile] : []),
  ]).start();
  p.url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(p.url + "/health")).ok, "sandbox-ui to listen");
  return p;
}

export async function browser() {
  if (!existsSync("/usr/bin/chromium")) throw new Error("Debian's chromium is missing: apt-get install chromium");
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--headless"] });
}

export async function login(page, base, user, password) {
  await page.goto(base + "/login");
  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', password);
  await Promise.all([page.waitForLoadState("load"), page.click('button[type="submit"]')]);
}

// The local fake of the Hugging Face hub (scripts/fakehub), serving `file` as
// org/tiny-GGUF/tiny.gguf at `rate` bytes/s, so a download takes a while.
export async function fakeHub(file, rate) {
  const child = spawn("python3", [path.join(repo, "scripts/fakehub/fake_hub.py"), "--serve", `org/tiny-GGUF=tiny.gguf=${file}`,
    "--rate", String(rate)], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise((resolve, reject) => {
    child.stdout.once("data", (d) => resolve(d.toString().trim().split("\n")[0]));
    child.once("exit", (code) => reject(new Error("fake hub exited with " + code)));
  });
  return { url, stop: () => child.kill() };
}

// A stand-in for sandbox-api (sandbox-ui/examples/fake_api.rs, built from the same
// contract types as sandbox-api's responses), answering with `answer` in small pieces:
// for answers the small model cannot be made to write, like HTML injection attempts.
export async function fakeApi(answer) {
  const dir = mkdtempSync(path.join(tmpdir(), "fake-api-"));
  const file = path.join(dir, "answer.txt");
  writeFileSync(file, answer);
  const port = await freePort();
  const child = spawn(path.join(target, "release", "examples", "fake_api"), [String(port), file], { stdio: "inherit" });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    try { return (await fetch(url + "/ready")).ok; } catch (_) { return false; }
  }, "the fake API to answer", 10000);
  return { url, close: () => new Promise((r) => { child.once("exit", r); child.kill(); }) };
}
