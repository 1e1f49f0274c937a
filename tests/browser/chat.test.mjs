// End-to-end test of confab's web page in Debian's Chromium, driven by playwright-core: two browser users and one raw-socket line user chat in rooms and by DM, markup shows as text, the page reconnects after a server restart and shows history once, scrolls back through older messages, and a user registers an account and logs in again from fresh pages.
//
// Run from this folder with the built binary's path in CONFAB_BIN:
//   CONFAB_BIN=../../target/debug/confab node --test
// Screenshots of each step go to out/ (ignored by git); look at them after a change.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.join(HERE, "out");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** Chromium's switches besides --headless, which playwright adds for headless: true. */
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** How long any one expected thing may take. */
const PATIENCE = 10_000;
const INJECTION = "<img src=x onerror=alert(1)>";
/** The lobby's messages before the restart, as every later page must show them. */
const LOBBY = [
  "hello from alice",
  "hello from bob",
  "hello from carol",
  "waves",
  INJECTION,
  `${INJECTION} from carol`,
  "typed on a phone",
  "back again",
];
const PASSWORD = "correct horse battery staple";

function binary() {
  const bin = process.env.CONFAB_BIN;
  assert.ok(bin, "set CONFAB_BIN to the built confab binary, e.g. ../../target/debug/confab");
  const resolved = path.resolve(bin);
  assert.ok(fs.existsSync(resolved), `CONFAB_BIN ${resolved} does not exist; build it first`);
  return resolved;
}

// ---------------------------------------------------------------- the server

/** Starts `confab serve`, keeping its data in `data`, and reads the addresses it bound from its stdout. */
async function startServer({ data, http = "127.0.0.1:0", line = "127.0.0.1:0" }) {
  const child = spawn(
    binary(),
    ["serve", "--listen", line, "--irc-listen", "127.0.0.1:0", "--http-listen", http, "--data", data],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "info" } },
  );
  const log = fs.createWriteStream(path.join(OUT, "server.log"), { flags: "a" });
  child.stderr.pipe(log);
  const addrs = {};
  let buffered = "";
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("confab serve did not print its addresses")), PATIENCE);
    child.on("exit", (code) => reject(new Error(`confab serve exited early with ${code}`)));
    child.stdout.on("data", (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const lineText = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        const web = /web page and WebSocket listening on (\S+)/.exec(lineText);
        const plain = /line protocol listening on (\S+)/.exec(lineText);
        if (web) addrs.http = web[1];
        if (plain) addrs.line = plain[1];
        if (addrs.http && addrs.line) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
  });
  return { child, ...addrs };
}

/** Stops the server the way Ctrl-C does and waits for it to exit. */
async function stopServer(server) {
  if (server.child.exitCode !== null) return;
  const exited = once(server.child, "exit");
  server.child.kill("SIGTERM");
  const timer = setTimeout(() => server.child.kill("SIGKILL"), 15_000);
  const [code] = await exited;
  clearTimeout(timer);
  return code;
}

// ---------------------------------------------------------------- a line-protocol user

/** A raw TCP client of the line protocol, as `nc` would be. */
class LineUser {
  constructor(socket) {
    this.socket = socket;
    this.lines = [];
    this.cursor = 0;
    this.waiters = [];
    let partial = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk) => {
      partial += chunk;
      let newline;
      while ((newline = partial.indexOf("\n")) >= 0) {
        this.lines.push(partial.slice(0, newline));
        partial = partial.slice(newline + 1);
      }
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async register(addr, name) {
    const [host, port] = splitAddr(addr);
    const socket = net.connect(port, host);
    await once(socket, "connect");
    const user = new LineUser(socket);
    user.send(`#${name}`);
    await user.expect(`* Members of lobby`);
    return user;
  }

  send(line) {
    this.socket.write(line + "\n");
  }

  /** Waits for a line that starts with `prefix`, past the lines already matched. */
  async expect(prefix) {
    const deadline = Date.now() + PATIENCE;
    for (;;) {
      while (this.cursor < this.lines.length) {
        const line = this.lines[this.cursor++];
        if (line.startsWith(prefix)) return line;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`line user: no line starting ${JSON.stringify(prefix)}; got ${JSON.stringify(this.lines)}`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close() {
    this.socket.destroy();
  }
}

function splitAddr(addr) {
  const at = addr.lastIndexOf(":");
  return [addr.slice(0, at).replace(/^\[|\]$/g, ""), Number(addr.slice(at + 1))];
}

// ---------------------------------------------------------------- browser users

let shots = 0;

/** A browser with its own fresh profile and one tab on the chat page. */
async function openBrowser(url, label) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), `confab-${label}-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1100, height: 700 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const user = { label, context, page, profile, dialogs: [], errors: [] };
  // Any dialog would mean markup ran as script; any page error is a bug.
  page.on("dialog", (dialog) => {
    user.dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  page.on("pageerror", (error) => user.errors.push(String(error)));
  await page.goto(url);
  return user;
}

async function closeBrowser(user) {
  await user.context.close();
  fs.rmSync(user.profile, { recursive: true, force: true });
}

async function shot(user, name) {
  shots += 1;
  const file = path.join(OUT, `${String(shots).padStart(2, "0")}-${user.label}-${name}.png`);
  await user.page.screenshot({ path: file });
}

async function register(user, name) {
  await user.page.fill("#name-input", name);
  await user.page.press("#name-input", "Enter");
  await user.page.locator("#me", { hasText: name }).waitFor({ timeout: PATIENCE });
  await waitForStatus(user, "online");
}

async function waitForStatus(user, state, timeout = PATIENCE) {
  await user.page.waitForFunction(
    (wanted) => document.getElementById("status").dataset.state === wanted,
    state,
    { timeout },
  );
}

/** Types into the message box and sends with Enter, as a person would. */
async function type(user, text) {
  await user.page.fill("#message-input", text);
  await user.page.press("#message-input", "Enter");
}

/** Waits until the open conversation shows a message whose text is exactly `text`. */
async function seeMessage(user, from, text) {
  const item = user.page
    .locator("#messages li.msg")
    .filter({ has: user.page.locator(".from", { hasText: from }) })
    .filter({ has: user.page.getByText(text, { exact: true }) });
  await item.last().waitFor({ timeout: PATIENCE });
  return item.last();
}

async function seeNote(user, text) {
  await user.page.locator("#messages li.sys", { hasText: text }).last().waitFor({ timeout: PATIENCE });
}

/** The texts of the messages in the open conversation, top to bottom. */
async function texts(user) {
  return user.page.locator("#messages li.msg .text").allTextContents();
}

/** Waits until the open conversation shows "Beginning of conversation" above its first line. */
async function seeBeginning(user) {
  await user.page
    .locator("#messages .history-marker", { hasText: "Beginning of conversation" })
    .waitFor({ timeout: PATIENCE });
}

/** Asserts that each of `wanted` shows exactly once in the open conversation, in this order. */
async function seeEachOnce(user, wanted) {
  const deadline = Date.now() + PATIENCE;
  for (;;) {
    const shown = await texts(user);
    const counts = wanted.map((w) => shown.filter((t) => t === w).length);
    const order = wanted.map((w) => shown.indexOf(w));
    const sorted = order.every((at, i) => i === 0 || at > order[i - 1]);
    if (counts.every((c) => c === 1) && sorted) return;
    if (Date.now() > deadline) {
      throw new Error(`${user.label}: wanted each of ${JSON.stringify(wanted)} once, in order; shown ${JSON.stringify(shown)}`);
    }
    await user.page.waitForTimeout(50);
  }
}

/** Logs in from the name form: a name and its password. */
async function logIn(user, name, password) {
  await user.page.fill("#name-input", name);
  await user.page.fill("#password-input", password);
  assert.equal(await user.page.locator("#login-button").textContent(), "Log in");
  await user.page.press("#password-input", "Enter");
  await user.page.locator("#me", { hasText: name }).waitFor({ timeout: PATIENCE });
  await user.page.locator("#account-state").waitFor({ state: "visible", timeout: PATIENCE });
  await waitForStatus(user, "online");
  assert.equal(await user.page.inputValue("#password-input"), "", "the password is not kept in the form");
}

/** The sidebar button of a conversation ("#lobby" or a name). */
function convButton(user, label) {
  return user.page.locator(".conv-list button").filter({
    has: user.page.locator(".label", { hasText: new RegExp(`^${escapeRegExp(label)}$`) }),
  });
}

async function unreadOf(user, label) {
  const badge = convButton(user, label).locator(".unread");
  return (await badge.count()) === 0 ? 0 : Number(await badge.textContent());
}

async function waitForUnread(user, label, count) {
  const deadline = Date.now() + PATIENCE;
  while ((await unreadOf(user, label)) !== count) {
    if (Date.now() > deadline) {
      throw new Error(`${user.label}: ${label} shows ${await unreadOf(user, label)} unread, not ${count}`);
    }
    await user.page.waitForTimeout(50);
  }
}

async function openConv(user, label) {
  await convButton(user, label).click();
  await user.page.locator("#conv-name", { hasText: label }).waitFor({ timeout: PATIENCE });
}

async function members(user) {
  return user.page.locator("#member-list li").evaluateAll((items) =>
    items.map((li) => li.querySelector("span:nth-child(2)").textContent),
  );
}

async function waitForMembers(user, wanted) {
  const deadline = Date.now() + PATIENCE;
  for (;;) {
    const now = await members(user);
    if (JSON.stringify(now) === JSON.stringify(wanted)) return;
    if (Date.now() > deadline) throw new Error(`${user.label}: members ${now}, wanted ${wanted}`);
    await user.page.waitForTimeout(50);
  }
}

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// ---------------------------------------------------------------- the test

test("two browser users and a line user chat, safely, across a server restart", async (t) => {
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  // A fresh data directory: history and accounts from earlier runs must not leak in.
  const data = fs.mkdtempSync(path.join(os.tmpdir(), "confab-data-"));
  let server = await startServer({ data });
  const url = `http://${server.http}/`;
  const alice = await openBrowser(url, "alice");
  const bob = await openBrowser(url, "bob");
  let carol = null;
  /** Browsers opened by later steps, closed at the end whatever happens. */
  const others = [];
  t.after(async () => {
    carol?.close();
    await closeBrowser(alice).catch(() => {});
    await closeBrowser(bob).catch(() => {});
    for (const user of others) await closeBrowser(user).catch(() => {});
    await stopServer(server).catch(() => {});
    fs.rmSync(data, { recursive: true, force: true });
  });

  await t.test("a name with markup is refused and shown as text", async () => {
    // The page renders in standards mode, its opening comment notwithstanding.
    assert.equal(await alice.page.evaluate(() => document.compatMode), "CSS1Compat");
    await shot(alice, "name-form");
    await alice.page.fill("#name-input", INJECTION);
    await alice.page.press("#name-input", "Enter");
    const error = alice.page.locator("#login-error");
    await error.filter({ hasText: "Invalid name" }).waitFor({ timeout: PATIENCE });
    assert.match(await error.textContent(), new RegExp(escapeRegExp(INJECTION)));
    assert.equal(await alice.page.locator("#login img").count(), 0);
    await shot(alice, "invalid-name");
  });

  await t.test("everyone registers and meets in the lobby", async () => {
    await register(alice, "alice");
    await register(bob, "bob");
    carol = await LineUser.register(server.line, "carol");
    await waitForMembers(alice, ["alice", "bob", "carol"]);
    await waitForMembers(bob, ["alice", "bob", "carol"]);
    assert.equal(await alice.page.locator("#conv-name").textContent(), "#lobby");
  });

  await t.test("room messages reach everyone, in every direction", async () => {
    await type(alice, "hello from alice");
    await seeMessage(bob, "alice", "hello from alice");
    await carol.expect("[lobby] alice: hello from alice");
    // Alice sees her own message once, as the server stamped it.
    await seeMessage(alice, "alice", "hello from alice");

    await type(bob, "hello from bob");
    await seeMessage(alice, "bob", "hello from bob");
    await carol.expect("[lobby] bob: hello from bob");

    carol.send("hello from carol");
    await seeMessage(alice, "carol", "hello from carol");
    await seeMessage(bob, "carol", "hello from carol");
    await type(bob, "/me waves");
    await seeMessage(alice, "* bob", "waves");
    await carol.expect("[lobby] * bob waves");
    await shot(bob, "lobby");
  });

  await t.test("direct messages reach only their recipient, in every direction", async () => {
    await type(alice, "/msg bob psst, bob");
    await waitForUnread(bob, "alice", 1);
    await shot(bob, "dm-unread");
    await openConv(bob, "alice");
    await seeMessage(bob, "alice", "psst, bob");
    await waitForUnread(bob, "alice", 0);
    await type(bob, "hi alice, from bob");
    await waitForUnread(alice, "bob", 0);
    await seeMessage(alice, "bob", "hi alice, from bob");

    await type(bob, "/msg carol hi carol, from bob");
    await carol.expect("[dm] bob: hi carol, from bob");
    carol.send("@bob:hi bob, from carol");
    await waitForUnread(bob, "carol", 0);
    await seeMessage(bob, "carol", "hi bob, from carol");

    await type(alice, "/msg carol hi carol, from alice");
    await carol.expect("[dm] alice: hi carol, from alice");
    carol.send("@alice:hi alice, from carol");
    await openConv(alice, "carol");
    await seeMessage(alice, "carol", "hi alice, from carol");
    await shot(alice, "dm");
  });

  await t.test("markup in messages shows as text and never runs", async () => {
    await openConv(alice, "#lobby");
    await openConv(bob, "#lobby");
    await type(alice, INJECTION);
    const fromAlice = await seeMessage(bob, "alice", INJECTION);
    assert.equal(await fromAlice.locator(".text").textContent(), INJECTION);
    await carol.expect(`[lobby] alice: ${INJECTION}`);
    carol.send(`${INJECTION} from carol`);
    await seeMessage(alice, "carol", `${INJECTION} from carol`);
    await seeMessage(bob, "carol", `${INJECTION} from carol`);
    for (const user of [alice, bob]) {
      assert.equal(await user.page.locator("#messages img").count(), 0, `${user.label} has an img`);
    }
    await bob.page.waitForTimeout(300);
    await shot(bob, "markup-as-text");
  });

  await t.test("rooms: join, unread counts, members, leave", async () => {
    await alice.page.fill("#join-input", "rust");
    await alice.page.press("#join-input", "Enter");
    await alice.page.locator("#conv-name", { hasText: "#rust" }).waitFor({ timeout: PATIENCE });
    await type(bob, "/join rust");
    await bob.page.locator("#conv-name", { hasText: "#rust" }).waitFor({ timeout: PATIENCE });
    await waitForMembers(alice, ["alice", "bob"]);
    carol.send("/join rust");
    await waitForMembers(bob, ["alice", "bob", "carol"]);
    await openConv(bob, "#lobby");
    await type(alice, "anyone for rust?");
    await carol.expect("[rust] alice: anyone for rust?");
    await waitForUnread(bob, "#rust", 1);
    assert.equal(await bob.page.title(), "(1) confab");
    await shot(bob, "room-unread");
    await openConv(bob, "#rust");
    await seeMessage(bob, "alice", "anyone for rust?");
    await waitForUnread(bob, "#rust", 0);
    await shot(alice, "rust-members");
    await bob.page.click("#leave-button");
    await seeNote(alice, "bob left");
    await waitForMembers(alice, ["alice", "carol"]);
    await convButton(bob, "#rust").waitFor({ state: "detached", timeout: PATIENCE });
    await carol.expect("* bob left rust");
  });

  await t.test("the keyboard moves between conversations", async () => {
    await alice.page.focus("#message-input");
    const before = await alice.page.locator("#conv-name").textContent();
    await alice.page.keyboard.press("Alt+ArrowDown");
    const after = await alice.page.locator("#conv-name").textContent();
    assert.notEqual(after, before);
    await alice.page.keyboard.press("Alt+ArrowUp");
    assert.equal(await alice.page.locator("#conv-name").textContent(), before);
    assert.equal(await alice.page.evaluate(() => document.activeElement.id), "message-input");
  });

  await t.test("a phone-sized screen gets one column with slide-over panels", async () => {
    await openConv(bob, "#lobby");
    await openConv(alice, "#lobby");
    await bob.page.setViewportSize({ width: 390, height: 760 });
    await shot(bob, "phone");
    assert.equal(await bob.page.locator("#sidebar").isVisible(), false);
    await bob.page.click("#toggle-sidebar");
    await bob.page.locator("#sidebar").waitFor({ state: "visible", timeout: PATIENCE });
    await shot(bob, "phone-rooms");
    await bob.page.keyboard.press("Escape");
    await bob.page.click("#toggle-members");
    await bob.page.locator("#members-panel").waitFor({ state: "visible", timeout: PATIENCE });
    await shot(bob, "phone-members");
    await bob.page.keyboard.press("Escape");
    await type(bob, "typed on a phone");
    await seeMessage(alice, "bob", "typed on a phone");
    await bob.page.setViewportSize({ width: 1100, height: 700 });
  });

  await t.test("the page reconnects after the server restarts", async () => {
    const httpAddr = server.http;
    const lineAddr = server.line;
    const stopping = stopServer(server);
    await seeNote(alice, "Server is shutting down");
    await waitForStatus(bob, "reconnecting");
    await stopping;
    carol.close();
    await shot(alice, "server-down");
    server = await startServer({ data, http: httpAddr, line: lineAddr });
    await waitForStatus(alice, "online", 30_000);
    await waitForStatus(bob, "online", 30_000);
    await seeNote(alice, "Reconnected.");
    carol = await LineUser.register(server.line, "carol");
    // Alice was in #rust before the restart and is back in it.
    await openConv(alice, "#rust");
    await waitForMembers(alice, ["alice"]);
    await openConv(alice, "#lobby");
    await waitForMembers(alice, ["alice", "bob", "carol"]);
    await openConv(bob, "#lobby");
    await type(bob, "back again");
    await seeMessage(alice, "bob", "back again");
    await carol.expect("[lobby] bob: back again");
    // The reconnected page asked for the lobby's history: what it already showed, it
    // shows once.
    await seeEachOnce(alice, LOBBY);
    await seeBeginning(alice);
    await shot(alice, "reconnected");
  });

  await t.test("a fresh page shows the history once, oldest first", async () => {
    const dave = await openBrowser(url, "dave");
    others.push(dave);
    await register(dave, "dave");
    await seeEachOnce(dave, LOBBY);
    await seeBeginning(dave);
    assert.equal(await dave.page.locator("#messages img").count(), 0, "markup from history stays text");
    // What happens next arrives live, once, below the history.
    await type(alice, "live after history");
    await seeEachOnce(dave, [...LOBBY, "live after history"]);
    await shot(dave, "history");
  });

  await t.test("scrolling to the top loads older messages and keeps the place", async () => {
    const dave = others[0];
    // Six line users take turns writing 20 lines each: one user writing all 120 at once
    // would be over the flood budget. The line protocol answers in order, so after a
    // user's pong all its lines are in the chat and the next one can start.
    for (let k = 0; k < 6; k++) {
      const filler = await LineUser.register(server.line, `filler${k}`);
      filler.send("/join scroll");
      await filler.expect("* Members of scroll");
      for (let i = 1; i <= 20; i++) filler.send(`scroll ${k * 20 + i}`);
      filler.send("/ping");
      await filler.expect("* pong");
      filler.send("/quit");
      await filler.expect("* Goodbye");
      filler.close();
    }
    await type(dave, "/join scroll");
    await dave.page.locator("#conv-name", { hasText: "#scroll" }).waitFor({ timeout: PATIENCE });
    await seeMessage(dave, "filler", "scroll 120");
    await dave.page.locator("#messages .history-marker", { hasText: "Load earlier messages" }).waitFor({ timeout: PATIENCE });
    let shown = await texts(dave);
    assert.deepEqual(shown.slice(0, 1), ["scroll 71"], "the newest page comes first");
    assert.equal(shown.filter((t) => t.startsWith("scroll ")).length, 50);
    await shot(dave, "scroll-latest");

    /** Where the line "scroll N" is, relative to the top of the message view. */
    const offsetOf = (n) =>
      dave.page.evaluate((text) => {
        const view = document.getElementById("messages");
        const item = [...view.querySelectorAll("li.msg")].find((li) => li.querySelector(".text").textContent === text);
        return item.getBoundingClientRect().top - view.getBoundingClientRect().top;
      }, `scroll ${n}`);
    for (const [oldest, next] of [[71, 21], [21, 1]]) {
      // Measured in the same turn as the scroll, before the page can react to it.
      const before = await dave.page.evaluate((text) => {
        const view = document.getElementById("messages");
        view.scrollTop = 0;
        const item = [...view.querySelectorAll("li.msg")].find((li) => li.querySelector(".text").textContent === text);
        return item.getBoundingClientRect().top - view.getBoundingClientRect().top;
      }, `scroll ${oldest}`);
      await seeMessage(dave, "filler", `scroll ${next}`);
      await dave.page.waitForFunction(
        () => !document.querySelector("#messages .history-marker")?.textContent.startsWith("Loading"),
        null,
        { timeout: PATIENCE },
      );
      const after = await offsetOf(oldest);
      assert.ok(Math.abs(after - before) < 40, `scroll ${oldest} stayed in place: ${before} → ${after}`);
    }
    await seeBeginning(dave);
    shown = (await texts(dave)).filter((t) => t.startsWith("scroll "));
    assert.deepEqual(shown, Array.from({ length: 120 }, (_, i) => `scroll ${i + 1}`));
    await dave.page.evaluate(() => {
      document.getElementById("messages").scrollTop = 0;
    });
    await shot(dave, "scroll-beginning");
  });

  await t.test("a user registers an account and logs in again from fresh pages", async () => {
    const dave = others[0];
    await openConv(dave, "#lobby");
    await dave.page.click("#account-button");
    await dave.page.locator("#account-panel").waitFor({ state: "visible", timeout: PATIENCE });
    assert.equal(await dave.page.getAttribute("#account-password", "type"), "password");
    assert.equal(await dave.page.getAttribute("#account-password", "autocomplete"), "new-password");
    await dave.page.fill("#account-password", PASSWORD);
    await dave.page.fill("#account-repeat", "not the same");
    await dave.page.click("#account-submit");
    await dave.page.locator("#account-error", { hasText: "differ" }).waitFor({ timeout: PATIENCE });
    await dave.page.fill("#account-password", PASSWORD);
    await dave.page.fill("#account-repeat", PASSWORD);
    await shot(dave, "register-account");
    await dave.page.click("#account-submit");
    await dave.page.locator("#account-state").waitFor({ state: "visible", timeout: PATIENCE });
    await seeNote(dave, "Logged in as dave");
    assert.equal(await dave.page.locator("#account-panel").isVisible(), false);
    assert.equal(await dave.page.locator("#account-button").isVisible(), false);
    await shot(dave, "registered-account");
    await closeBrowser(dave);
    await carol.expect("* dave quit");

    // A direct message to the offline account waits for it; the sender sees it kept.
    await type(alice, "/msg dave are you there, dave?");
    await seeNote(alice, "dave is offline");
    await seeMessage(alice, "alice", "are you there, dave?");
    await shot(alice, "stored-for-later");

    // A fresh page logs in with the name form and gets the message, once.
    const again = await openBrowser(url, "dave-again");
    others.push(again);
    await logIn(again, "dave", PASSWORD);
    await waitForUnread(again, "alice", 1);
    await openConv(again, "alice");
    await seeEachOnce(again, ["are you there, dave?"]);
    await shot(again, "logged-in");
    await closeBrowser(again);
    await carol.expect("* dave quit");

    // Another fresh page takes the name without a password: it is asked to log in, a
    // wrong password is refused in the panel, the right one keeps the name.
    const panel = await openBrowser(url, "dave-panel");
    others.push(panel);
    await register(panel, "dave");
    await seeNote(panel, "The name dave is registered");
    await panel.page.locator("#account-panel").waitFor({ state: "visible", timeout: PATIENCE });
    assert.equal(await panel.page.getAttribute("#account-password", "autocomplete"), "current-password");
    assert.equal(await panel.page.locator("#account-button .wide").textContent(), "Log in");
    await shot(panel, "login-required");
    await panel.page.fill("#account-password", "wrong horse");
    await panel.page.press("#account-password", "Enter");
    await panel.page.locator("#account-error", { hasText: "Wrong name or password" }).waitFor({ timeout: PATIENCE });
    await shot(panel, "login-refused");
    await panel.page.fill("#account-password", PASSWORD);
    await panel.page.press("#account-password", "Enter");
    await panel.page.locator("#account-state").waitFor({ state: "visible", timeout: PATIENCE });
    await seeNote(panel, "Logged in as dave");
    // Delivered once already; the conversation's history still has it.
    await panel.page.fill("#dm-input", "alice");
    await panel.page.press("#dm-input", "Enter");
    await panel.page.locator("#conv-name", { hasText: "alice" }).waitFor({ timeout: PATIENCE });
    await seeEachOnce(panel, ["are you there, dave?"]);
    await shot(panel, "logged-in-from-panel");
    for (const user of [alice, bob, panel]) {
      const html = await user.page.content();
      assert.ok(!html.includes(PASSWORD) && !html.includes("wrong horse"), `${user.label} shows a password`);
    }
  });

  await t.test("a name's next holder sees none of its earlier holder's direct messages", async () => {
    // Bob (never logged in) talks with alice and carol, then closes his browser.
    await type(alice, "/msg bob only for this bob");
    await waitForUnread(bob, "alice", 1);
    await openConv(bob, "alice");
    await seeMessage(bob, "alice", "only for this bob");
    carol.send("@bob:also only for this bob");
    await openConv(bob, "carol");
    await seeMessage(bob, "carol", "also only for this bob");
    await closeBrowser(bob);
    await carol.expect("* bob quit");

    // Someone else takes the name in a fresh browser and opens both conversations:
    // the page shows nothing of them.
    const next = await openBrowser(url, "next-bob");
    others.push(next);
    await register(next, "bob");
    for (const peer of ["alice", "carol"]) {
      await next.page.fill("#dm-input", peer);
      await next.page.press("#dm-input", "Enter");
      await next.page.locator("#conv-name", { hasText: peer }).waitFor({ timeout: PATIENCE });
      await seeBeginning(next);
      assert.deepEqual(await texts(next), [], `the next bob sees the earlier bob's DMs with ${peer}`);
    }
    const html = await next.page.content();
    assert.ok(!html.includes("only for this bob"), "no trace of the earlier bob's DMs in the page");
    await shot(next, "next-holder-sees-nothing");

    // Alice, who was in the conversation, still reads it back.
    await openConv(alice, "bob");
    await seeMessage(alice, "alice", "only for this bob");
  });

  await t.test("no dialog opened and no script failed", async () => {
    for (const user of [alice, bob, ...others]) {
      assert.deepEqual(user.dialogs, [], `${user.label} saw dialogs`);
      assert.deepEqual(user.errors, [], `${user.label} had page errors`);
    }
  });
});
