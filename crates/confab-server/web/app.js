// The confab chat page: speaks the JSON protocol of docs/web-protocol.md over the WebSocket at /ws and draws rooms, direct messages and members.
//
// Every piece of text that comes from the network is put on the page with textContent or
// createTextNode, never as HTML, so a message like <img src=x onerror=alert(1)> shows as
// those characters.

/** Lines kept per conversation; older ones are dropped so a long session stays light. */
const MAX_KEPT = 2000;
/** Messages asked for in one page of history. */
const PAGE = 50;
/** Scrolled this close to the top, the page asks for the messages before. */
const LOAD_AT_PX = 80;
/** The server's limit on a password's length, in bytes. */
const MAX_PASSWORD = 512;
/** A ping this often keeps the connection inside the server's idle timeout. */
const PING_MS = 25_000;
/** Reconnect delays grow from the first to the last, doubling each failed attempt. */
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000;

const $ = (id) => document.getElementById(id);

const ui = {
  login: $("login"),
  loginForm: $("login-form"),
  nameInput: $("name-input"),
  passwordInput: $("password-input"),
  loginError: $("login-error"),
  loginButton: $("login-button"),
  chat: $("chat"),
  me: $("me"),
  accountState: $("account-state"),
  accountButton: $("account-button"),
  accountPanel: $("account-panel"),
  accountForm: $("account-form"),
  accountTitle: $("account-title"),
  accountText: $("account-text"),
  accountName: $("account-name"),
  accountPassword: $("account-password"),
  accountRepeatRow: $("account-repeat-row"),
  accountRepeat: $("account-repeat"),
  accountError: $("account-error"),
  accountSubmit: $("account-submit"),
  accountCancel: $("account-cancel"),
  status: $("status"),
  reconnectNow: $("reconnect-now"),
  toggleSidebar: $("toggle-sidebar"),
  toggleMembers: $("toggle-members"),
  sidebar: $("sidebar"),
  roomList: $("room-list"),
  dmList: $("dm-list"),
  joinForm: $("join-form"),
  joinInput: $("join-input"),
  dmForm: $("dm-form"),
  dmInput: $("dm-input"),
  convName: $("conv-name"),
  convTopic: $("conv-topic"),
  leaveButton: $("leave-button"),
  messages: $("messages"),
  composer: $("composer"),
  messageInput: $("message-input"),
  membersPanel: $("members-panel"),
  memberList: $("member-list"),
  memberCount: $("member-count"),
};

/** Names and rooms are unique regardless of ASCII case, as on the server. */
const fold = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
const roomKey = (room) => "#" + fold(room);
const dmKey = (name) => "@" + fold(name);

const state = {
  /** Our registered name, or null before registering (and while reconnecting). */
  me: null,
  /** The name we asked for or last had; reconnecting registers it again. */
  name: null,
  /** Whether this page has ever been registered: reconnects are automatic after that. */
  started: false,
  /** Conversations by key: rooms ("#lobby") and direct messages ("@bob"). */
  conversations: new Map(),
  current: null,
  /** Rooms the user asked to join, to switch to when the join succeeds. */
  pendingSwitch: new Set(),
  ws: null,
  limits: { max_message: 4096 },
  defaultRoom: "lobby",
  /** Whether the server keeps history, and so accounts (from its hello). */
  history: false,
  accounts: false,
  /** The account this connection is logged in to, or null. */
  account: null,
  /**
   * The account and password that logged in, kept in memory only (never stored, never
   * shown) so that a reconnect logs in again instead of losing the name.
   */
  credentials: null,
  /** A login or account registration sent and not yet answered, likewise. */
  pending: null,
  /** The registered name the server asked us to log in to (login_required), or null. */
  loginFor: null,
  /** Set when the server renamed us for not logging in, to word its error once. */
  renamed: false,
  /** What the account panel does: "register" or "login". */
  accountMode: "register",
  attempt: 0,
  reconnectTimer: null,
  countdownTimer: null,
  pingTimer: null,
  /** The code of the server's closing event, if one came before the socket closed. */
  closingCode: null,
  /** Set when the user quits: no reconnecting then. */
  quitting: false,
};

// ---------------------------------------------------------------- conversations

function conversation(key, kind, name) {
  let conv = state.conversations.get(key);
  if (!conv) {
    const list = document.createElement("ol");
    const top = document.createElement("div");
    top.className = "history-marker";
    top.hidden = true;
    conv = {
      key,
      kind,
      name,
      list,
      unread: 0,
      members: [],
      topic: "",
      joined: false,
      /** Ids of the messages shown, so that one arriving twice (live and from history) shows once. */
      ids: new Set(),
      /** The oldest message id shown: the next page of history ends before it. */
      oldest: null,
      /** Whether the server has older messages (null: not known yet). */
      more: null,
      /** The history request under way: "latest", "older" or null. */
      loading: null,
      /** Whether the newest page was loaded on this connection. */
      loaded: false,
      /** Whether a newer page is wanted as soon as the one under way arrives. */
      stale: false,
      /** Whether we are in this room on this connection (history is for members). */
      here: false,
      /** Above the list: "Beginning of conversation", or a way to load older messages. */
      top,
    };
    state.conversations.set(key, conv);
  }
  return conv;
}

const roomConv = (room) => conversation(roomKey(room), "room", room);
const dmConv = (name) => conversation(dmKey(name), "dm", name);

function currentConv() {
  return state.conversations.get(state.current) ?? null;
}

function switchTo(key) {
  const conv = state.conversations.get(key);
  if (!conv) return;
  state.current = key;
  conv.unread = 0;
  closePanels();
  render();
  scrollToEnd(true);
  loadLatest(conv);
}

/** The conversations in sidebar order: rooms, then direct messages, each by name. */
function orderedConversations() {
  const all = [...state.conversations.values()].filter((c) => c.kind === "dm" || c.joined);
  const byName = (a, b) => fold(a.name).localeCompare(fold(b.name));
  return [
    ...all.filter((c) => c.kind === "room").sort(byName),
    ...all.filter((c) => c.kind === "dm").sort(byName),
  ];
}

function step(delta) {
  const list = orderedConversations();
  if (list.length === 0) return;
  const at = list.findIndex((c) => c.key === state.current);
  const next = list[(at + delta + list.length) % list.length];
  switchTo(next.key);
}

/** Adds one line to a conversation, counting it as unread if it is not on screen. A message already shown (it came from history first) is skipped. */
function append(conv, item, { unread = false } = {}) {
  if (item.dataset.id) {
    const id = Number(item.dataset.id);
    if (conv.ids.has(id)) return;
    conv.ids.add(id);
    if (conv.oldest === null || id < conv.oldest) conv.oldest = id;
  }
  const atEnd = isScrolledToEnd();
  conv.list.append(item);
  trim(conv);
  if (unread && (conv.key !== state.current || document.hidden)) {
    conv.unread += 1;
  }
  if (conv.key === state.current) scrollToEnd(atEnd);
  renderLists();
  renderTitle();
}

/** Drops the oldest lines past MAX_KEPT; the server still has those messages. */
function trim(conv) {
  let dropped = false;
  while (conv.list.childElementCount > MAX_KEPT) {
    const first = conv.list.firstElementChild;
    if (first.dataset.id) {
      conv.ids.delete(Number(first.dataset.id));
      dropped = true;
    }
    first.remove();
  }
  if (dropped) {
    const oldest = conv.list.querySelector("li.msg[data-id]");
    conv.oldest = oldest ? Number(oldest.dataset.id) : null;
    if (state.history) conv.more = true;
    renderMarker(conv);
  }
}

/** The time of day for today's lines, the date for older ones (history); the full time in the tooltip. */
function timeElement(ms) {
  const when = ms ? new Date(ms) : new Date();
  const el = document.createElement("time");
  el.dateTime = when.toISOString();
  el.title = when.toLocaleString();
  el.textContent =
    when.toDateString() === new Date().toDateString()
      ? when.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" })
      : when.toLocaleDateString([], { month: "short", day: "numeric" });
  return el;
}

function messageItem(m) {
  const li = document.createElement("li");
  li.className = "msg " + m.kind;
  li.dataset.id = String(m.id);
  if (state.me && fold(m.from) === fold(state.me)) li.classList.add("mine");
  const body = document.createElement("div");
  body.className = "body";
  const from = document.createElement("span");
  from.className = "from";
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.text;
  if (m.kind === "action") {
    from.textContent = "* " + m.from;
  } else if (m.kind === "notice") {
    from.textContent = "-" + m.from + "-";
  } else {
    from.textContent = m.from;
  }
  body.append(from, text);
  li.append(timeElement(m.time), body);
  return li;
}

function systemItem(text, className = "") {
  const li = document.createElement("li");
  li.className = ("sys " + className).trim();
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = text;
  li.append(timeElement(0), body);
  return li;
}

/** A notice for whatever conversation is on screen (replies, errors, connection news). */
function note(text, className = "") {
  // Between registering and joining the default room (a login notice comes then), the
  // room about to open gets it.
  const joining = state.me !== null && state.pendingSwitch.has(roomKey(state.defaultRoom));
  const conv = currentConv() ?? (joining ? roomConv(state.defaultRoom) : null);
  if (conv) {
    append(conv, systemItem(text, className));
  } else if (className === "error") {
    ui.loginError.textContent = text;
  }
}

// ---------------------------------------------------------------- history

/** What a history request names: a room, or whom a direct conversation is with. */
function historyTarget(conv) {
  return conv.kind === "room" ? { room: conv.name } : { with: conv.name };
}

/** The conversation a history answer or error is about, if the page still has it. */
function historyConv(e) {
  if (typeof e.room === "string") return state.conversations.get(roomKey(e.room)) ?? null;
  if (typeof e.with === "string") return state.conversations.get(dmKey(e.with)) ?? null;
  return null;
}

function canLoad(conv) {
  return Boolean(
    conv && state.history && state.me !== null && state.ws && (conv.kind === "dm" || conv.here),
  );
}

/** Asks for a conversation's newest page, once per connection: when it is first opened, and again after a reconnect to fill in what was missed. With `again`, also after a message that only history will show (one kept for an offline user). */
function loadLatest(conv, { again = false } = {}) {
  if (!canLoad(conv)) return;
  if (again) {
    if (conv.loading) {
      conv.stale = true;
      return;
    }
    conv.loaded = false;
  }
  if (conv.loaded || conv.loading) return;
  conv.loading = "latest";
  send({ type: "history", ...historyTarget(conv), limit: PAGE });
  renderMarker(conv);
}

/** Asks for the page before the oldest message shown. */
function loadOlder(conv) {
  if (!canLoad(conv) || !conv.loaded || conv.loading || conv.more !== true) return;
  if (conv.oldest === null || conv.list.childElementCount >= MAX_KEPT) return;
  conv.loading = "older";
  send({ type: "history", ...historyTarget(conv), before: conv.oldest, limit: PAGE });
  renderMarker(conv);
}

function onHistory(e) {
  const conv = historyConv(e);
  if (!conv || !Array.isArray(e.messages)) return;
  const older = typeof e.before === "number";
  if (conv.loading === (older ? "older" : "latest")) conv.loading = null;
  const first = e.messages[0];
  // A newest page says whether there is more before it; that is news only when the page reaches back as far as what is shown.
  const reachesBack =
    conv.oldest === null || (first && Number.isSafeInteger(first.id) && first.id <= conv.oldest);
  mergeHistory(conv, e.messages, older);
  if (older || reachesBack) conv.more = e.more === true;
  if (!older) conv.loaded = true;
  renderMarker(conv);
  if (!older && conv.stale) {
    conv.stale = false;
    loadLatest(conv, { again: true });
  } else if (conv.key === state.current && ui.messages.scrollHeight <= ui.messages.clientHeight) {
    // A page that does not fill the view cannot be scrolled up: fetch the one before.
    loadOlder(conv);
  }
}

/** Puts a page of history among the lines shown, each message once and in id order, keeping what the reader was looking at in place. */
function mergeHistory(conv, messages, older) {
  const fresh = messages
    .filter(
      (m) =>
        m &&
        Number.isSafeInteger(m.id) &&
        typeof m.from === "string" &&
        typeof m.text === "string" &&
        !conv.ids.has(m.id),
    )
    .sort((a, b) => a.id - b.id);
  if (fresh.length === 0) return;
  const onScreen = conv.key === state.current;
  const atEnd = onScreen && isScrolledToEnd();
  const fromBottom = ui.messages.scrollHeight - ui.messages.scrollTop;
  if (older) {
    // All of it is older than anything shown, notices included.
    const items = document.createDocumentFragment();
    for (const m of fresh) items.append(messageItem(m));
    conv.list.prepend(items);
  } else {
    // Messages shown are in id order; each one from history goes before the first shown message with a larger id, else after the last one with a smaller id, else on top.
    const shown = [...conv.list.querySelectorAll(":scope > li.msg[data-id]")];
    const top = conv.list.firstChild;
    let at = 0;
    let after = null;
    for (const m of fresh) {
      while (at < shown.length && Number(shown[at].dataset.id) < m.id) after = shown[at++];
      const item = messageItem(m);
      if (at < shown.length) {
        shown[at].before(item);
      } else if (after) {
        after.after(item);
        after = item;
      } else if (top) {
        top.before(item);
      } else {
        conv.list.append(item);
      }
    }
  }
  for (const m of fresh) conv.ids.add(m.id);
  if (conv.oldest === null || fresh[0].id < conv.oldest) conv.oldest = fresh[0].id;
  if (!older) trim(conv);
  if (onScreen) {
    if (atEnd) scrollToEnd(true);
    else ui.messages.scrollTop = ui.messages.scrollHeight - fromBottom;
  }
}

/** The line above a conversation: loading, a button for older messages, or its beginning. */
function renderMarker(conv) {
  const top = conv.top;
  if (!state.history || (conv.more === null && !conv.loading)) {
    top.hidden = true;
    return;
  }
  top.hidden = false;
  if (conv.loading) {
    top.dataset.state = "loading";
    top.replaceChildren(conv.loading === "older" ? "Loading earlier messages…" : "Loading messages…");
  } else if (conv.more && conv.list.childElementCount >= MAX_KEPT) {
    top.dataset.state = "full";
    top.replaceChildren(`Older messages are not kept on this page (the last ${MAX_KEPT} lines are).`);
  } else if (conv.more) {
    top.dataset.state = "more";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link-button";
    button.textContent = "Load earlier messages";
    button.addEventListener("click", () => loadOlder(conv));
    top.replaceChildren(button);
  } else {
    top.dataset.state = "beginning";
    top.replaceChildren("Beginning of conversation");
  }
}

// ---------------------------------------------------------------- accounts

/** Opens the account panel to register the current name ("register") or to log in to `name` ("login"). */
function openAccountPanel(mode, name = state.me) {
  if (!state.accounts) {
    note("This server has no accounts: it keeps no data.", "error");
    return;
  }
  if (!name) return;
  state.accountMode = mode;
  const login = mode === "login";
  ui.accountTitle.textContent = login ? `Log in as ${name}` : "Register this name";
  ui.accountText.textContent = login
    ? `${name} is a registered name. Enter its password to use it.`
    : `Choose a password for ${name}. From then on only you can use this name, and direct messages sent while you are away wait for you.`;
  ui.accountName.value = name;
  ui.accountPassword.value = "";
  ui.accountRepeat.value = "";
  ui.accountPassword.autocomplete = login ? "current-password" : "new-password";
  ui.accountRepeatRow.hidden = login;
  ui.accountSubmit.textContent = login ? "Log in" : "Register";
  ui.accountSubmit.disabled = false;
  ui.accountError.textContent = "";
  ui.accountPanel.hidden = false;
  ui.accountButton.setAttribute("aria-expanded", "true");
  ui.accountPassword.focus();
}

function closeAccountPanel() {
  ui.accountPanel.hidden = true;
  ui.accountPassword.value = "";
  ui.accountRepeat.value = "";
  ui.accountButton.setAttribute("aria-expanded", "false");
}

/** The top bar's account state: "logged in", or a way to register or log in. */
function renderAccount() {
  const named = state.me !== null;
  ui.accountState.hidden = !named || state.account === null;
  ui.accountState.title = state.account ? `Logged in to the account ${state.account}` : "";
  ui.accountButton.hidden = !named || !state.accounts || state.account !== null;
  // A phone's top bar has room for the short label only; style.css picks one.
  const [wide, narrow] = mustLogIn() ? ["Log in", "Log in"] : ["Register this name", "Register"];
  const long = document.createElement("span");
  long.className = "wide";
  long.textContent = wide;
  const short = document.createElement("span");
  short.className = "narrow";
  short.setAttribute("aria-hidden", "true");
  short.textContent = narrow;
  ui.accountButton.replaceChildren(long, short);
}

/** Whether the name in use is registered to an account we have not logged in to. */
function mustLogIn() {
  return state.loginFor !== null && isMe(state.loginFor) && state.account === null;
}

// ---------------------------------------------------------------- rendering

function render() {
  renderLists();
  renderConversation();
  renderMembers();
  renderTitle();
}

function convButton(conv) {
  const li = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.key = conv.key;
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = conv.kind === "room" ? "#" + conv.name : conv.name;
  button.append(label);
  if (conv.unread > 0) {
    li.className = "has-unread";
    const badge = document.createElement("span");
    badge.className = "unread";
    badge.textContent = String(conv.unread);
    badge.setAttribute("aria-label", `${conv.unread} unread`);
    button.append(badge);
  }
  if (conv.key === state.current) button.setAttribute("aria-current", "true");
  button.addEventListener("click", () => {
    switchTo(conv.key);
    ui.messageInput.focus();
  });
  li.append(button);
  return li;
}

function renderLists() {
  const convs = orderedConversations();
  ui.roomList.replaceChildren(...convs.filter((c) => c.kind === "room").map(convButton));
  ui.dmList.replaceChildren(...convs.filter((c) => c.kind === "dm").map(convButton));
}

function renderConversation() {
  const conv = currentConv();
  if (!conv) {
    ui.convName.textContent = "No conversation";
    ui.convTopic.textContent = "";
    ui.leaveButton.hidden = true;
    const empty = document.createElement("p");
    empty.className = "empty-note";
    empty.textContent = "Join a room or open a direct message to start.";
    ui.messages.replaceChildren(empty);
    return;
  }
  ui.convName.textContent = conv.kind === "room" ? "#" + conv.name : conv.name;
  ui.convTopic.textContent = conv.kind === "room" ? conv.topic : "direct messages";
  ui.convTopic.title = conv.topic;
  ui.leaveButton.hidden = false;
  ui.leaveButton.textContent = conv.kind === "room" ? "Leave" : "Close";
  ui.messageInput.placeholder =
    conv.kind === "room" ? `Message #${conv.name}` : `Message ${conv.name}`;
  renderMarker(conv);
  ui.messages.replaceChildren(conv.top, conv.list);
}

function renderMembers() {
  const conv = currentConv();
  const members = conv && conv.kind === "room" ? conv.members : [];
  ui.toggleMembers.hidden = !(conv && conv.kind === "room");
  ui.memberCount.textContent = conv && conv.kind === "room" ? `(${members.length})` : "";
  ui.memberList.replaceChildren(
    ...members.map((m) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      const prefix = document.createElement("span");
      prefix.className = "member-prefix";
      prefix.textContent = m.op ? "@" : m.voice ? "+" : "";
      const name = document.createElement("span");
      name.textContent = m.name;
      if (m.away) name.className = "member-away";
      button.append(prefix, name);
      const isMe = state.me && fold(m.name) === fold(state.me);
      if (isMe) {
        const you = document.createElement("span");
        you.className = "you";
        you.textContent = "(you)";
        button.append(you);
      }
      button.title = isMe ? "You" : `Send ${m.name} a direct message`;
      button.addEventListener("click", () => {
        if (isMe) return;
        const dm = dmConv(m.name);
        switchTo(dm.key);
        ui.messageInput.focus();
      });
      li.append(button);
      return li;
    }),
  );
}

function renderTitle() {
  let total = 0;
  for (const conv of state.conversations.values()) total += conv.unread;
  document.title = total > 0 ? `(${total}) confab` : "confab";
}

function isScrolledToEnd() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 40;
}

function scrollToEnd(force) {
  if (force) ui.messages.scrollTop = ui.messages.scrollHeight;
}

function showChat() {
  ui.login.hidden = true;
  ui.chat.hidden = false;
  ui.me.hidden = false;
}

function showLogin(error) {
  ui.chat.hidden = true;
  ui.login.hidden = false;
  ui.me.hidden = true;
  ui.accountState.hidden = true;
  ui.accountButton.hidden = true;
  closeAccountPanel();
  state.credentials = null;
  state.pending = null;
  ui.loginButton.disabled = false;
  ui.loginError.textContent = error ?? "";
  ui.nameInput.focus();
}

function setStatus(kind, text) {
  ui.status.dataset.state = kind;
  ui.status.textContent = text;
  ui.reconnectNow.hidden = kind !== "reconnecting";
}

function closePanels() {
  ui.sidebar.classList.remove("open");
  ui.membersPanel.classList.remove("open");
  ui.toggleSidebar.setAttribute("aria-expanded", "false");
  ui.toggleMembers.setAttribute("aria-expanded", "false");
}

function togglePanel(panel, button) {
  const open = !panel.classList.contains("open");
  closePanels();
  panel.classList.toggle("open", open);
  button.setAttribute("aria-expanded", String(open));
  if (open) panel.querySelector("button, input")?.focus();
}

// ---------------------------------------------------------------- the connection

function send(request) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(request));
    return true;
  }
  note("Not connected; this was not sent.", "error");
  return false;
}

function connect() {
  clearTimeout(state.reconnectTimer);
  clearInterval(state.countdownTimer);
  if (state.ws && state.ws.readyState <= WebSocket.OPEN) return;
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  setStatus("connecting", state.started ? "Reconnecting…" : "Connecting…");
  state.closingCode = null;
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.addEventListener("message", (e) => {
    let event;
    try {
      event = JSON.parse(e.data);
    } catch {
      return;
    }
    if (event && typeof event.type === "string") onEvent(event);
  });
  ws.addEventListener("close", () => {
    if (state.ws !== ws) return;
    state.ws = null;
    clearInterval(state.pingTimer);
    const wasRegistered = state.me !== null;
    state.me = null;
    state.account = null;
    state.pending = null;
    // The next connection rejoins, and then asks again for what it missed.
    for (const conv of state.conversations.values()) {
      conv.members = [];
      conv.here = false;
      conv.loaded = false;
      conv.loading = null;
      conv.stale = false;
    }
    renderMembers();
    if (state.quitting) {
      // Leaving was the user's choice: start over from the name form.
      state.started = false;
      state.current = null;
      state.conversations.clear();
      setStatus("offline", "Not connected");
      showLogin("You left the chat. Pick a name to come back.");
      return;
    }
    if (!state.started) {
      setStatus("offline", "Not connected");
      showLogin(ui.loginError.textContent || "The connection closed; try again.");
      return;
    }
    if (wasRegistered) note("Disconnected from the server.", "error");
    scheduleReconnect();
  });
}

/** Waits longer after each failed attempt (with some jitter, so a restarted server is not hit by every page at once), then connects again. */
function scheduleReconnect() {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.attempt);
  const delay = Math.round(base * (0.8 + Math.random() * 0.4));
  state.attempt += 1;
  const due = Date.now() + delay;
  const tick = () => {
    const seconds = Math.max(0, Math.ceil((due - Date.now()) / 1000));
    setStatus("reconnecting", `Reconnecting in ${seconds} s`);
  };
  tick();
  clearInterval(state.countdownTimer);
  state.countdownTimer = setInterval(tick, 1000);
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(connect, delay);
}

function onRegistered(name) {
  const first = !state.started;
  state.me = name;
  state.name = name;
  state.started = true;
  state.attempt = 0;
  ui.me.textContent = name;
  setStatus("online", "Connected");
  showChat();
  clearInterval(state.pingTimer);
  state.pingTimer = setInterval(() => send({ type: "ping" }), PING_MS);
  // The server puts everyone in the default room; after a reconnect, rejoin the rest.
  for (const conv of state.conversations.values()) {
    if (conv.kind === "room" && conv.joined && fold(conv.name) !== fold(state.defaultRoom)) {
      send({ type: "join", room: conv.name });
    }
  }
  if (first) {
    if (state.current === null) state.pendingSwitch.add(roomKey(state.defaultRoom));
    ui.messageInput.focus();
  } else {
    note("Reconnected.");
  }
  render();
  renderAccount();
  if (first && state.account) note(`Logged in as ${state.account}.`);
  // Rooms load their history once joined; a direct conversation can load now.
  const conv = currentConv();
  if (conv && conv.kind === "dm") loadLatest(conv);
}

// ---------------------------------------------------------------- events from the server

function isMe(name) {
  return state.me !== null && fold(name) === fold(state.me);
}

/** Rooms we are in whose member list includes `name`. */
function roomsWith(name) {
  return [...state.conversations.values()].filter(
    (c) => c.kind === "room" && c.joined && c.members.some((m) => fold(m.name) === fold(name)),
  );
}

function leftRoom(room) {
  const conv = roomConv(room);
  conv.joined = false;
  conv.here = false;
  // Rejoining asks again for what was said meanwhile.
  conv.loaded = false;
  conv.members = [];
  if (state.current === conv.key) {
    const next = orderedConversations()[0];
    state.current = next ? next.key : null;
  }
  render();
}

function onEvent(e) {
  switch (e.type) {
    case "hello": {
      state.limits = e.limits ?? state.limits;
      state.defaultRoom = e.default_room ?? state.defaultRoom;
      state.history = e.history === true;
      state.accounts = e.accounts === true;
      // A login registers under the account's name; after a reconnect it keeps the name.
      const login = state.pending ?? state.credentials;
      if (login) {
        state.pending = login;
        send({ type: "login", name: login.account, password: login.password });
      } else if (state.name) {
        send({ type: "register", name: state.name });
      }
      break;
    }
    case "history":
      onHistory(e);
      break;
    case "logged_in": {
      const again = state.account !== null && fold(state.account) === fold(e.account);
      state.account = e.account;
      if (state.pending) state.credentials = { account: e.account, password: state.pending.password };
      state.pending = null;
      state.loginFor = null;
      closeAccountPanel();
      if (!again && state.me !== null) {
        note(`Logged in as ${e.account}. Only you can use this name now.`);
        // The name's own direct messages are now readable: load the one on screen.
        const conv = currentConv();
        if (conv && conv.kind === "dm") loadLatest(conv, { again: true });
      }
      renderAccount();
      break;
    }
    case "login_required":
      state.loginFor = e.name;
      note(
        `The name ${e.name} is registered. Log in within a minute to keep it, or you will be renamed to a guest name.`,
        "warn",
      );
      renderAccount();
      openAccountPanel("login", e.name);
      break;
    case "stored_for_later": {
      const conv = dmConv(e.name);
      append(conv, systemItem(`${e.name} is offline: your message is kept and delivered when they log in.`));
      // Such a message is not echoed back; history has it, with its id and time.
      loadLatest(conv, { again: true });
      break;
    }
    case "registered":
      onRegistered(e.name);
      break;
    case "error":
      onError(e);
      break;
    case "message": {
      const conv = e.room ? roomConv(e.room) : dmConv(isMe(e.from) ? e.to : e.from);
      append(conv, messageItem(e), { unread: !isMe(e.from) });
      break;
    }
    case "joined": {
      const conv = roomConv(e.room);
      if (isMe(e.name)) {
        conv.name = e.room;
        conv.joined = true;
        conv.here = true;
        if (state.pendingSwitch.delete(conv.key) || state.current === null) {
          state.current = conv.key;
          conv.unread = 0;
        }
        append(conv, systemItem(`You joined #${e.room}`));
        render();
        if (conv.key === state.current) loadLatest(conv);
      } else {
        if (!conv.members.some((m) => fold(m.name) === fold(e.name))) {
          conv.members.push({ name: e.name, op: false, voice: false, away: false });
          conv.members.sort((a, b) => fold(a.name).localeCompare(fold(b.name)));
        }
        append(conv, systemItem(`${e.name} joined`));
        renderMembers();
      }
      break;
    }
    case "parted": {
      const conv = roomConv(e.room);
      const why = e.reason ? ` (${e.reason})` : "";
      if (isMe(e.name)) {
        append(conv, systemItem(`You left #${e.room}${why}`));
        leftRoom(e.room);
      } else {
        conv.members = conv.members.filter((m) => fold(m.name) !== fold(e.name));
        append(conv, systemItem(`${e.name} left${why}`));
        renderMembers();
      }
      break;
    }
    case "kicked": {
      const conv = roomConv(e.room);
      append(conv, systemItem(`${e.name} was removed by ${e.by} (${e.reason})`));
      if (isMe(e.name)) {
        leftRoom(e.room);
        note(`You were removed from #${e.room} by ${e.by} (${e.reason})`, "error");
      } else {
        conv.members = conv.members.filter((m) => fold(m.name) !== fold(e.name));
        renderMembers();
      }
      break;
    }
    case "quit": {
      for (const conv of roomsWith(e.name)) {
        conv.members = conv.members.filter((m) => fold(m.name) !== fold(e.name));
        append(conv, systemItem(`${e.name} quit (${e.reason})`));
      }
      const dm = state.conversations.get(dmKey(e.name));
      if (dm) append(dm, systemItem(`${e.name} went offline (${e.reason})`));
      renderMembers();
      break;
    }
    case "nick": {
      const rooms = roomsWith(e.old);
      for (const conv of rooms) {
        for (const m of conv.members) if (fold(m.name) === fold(e.old)) m.name = e.new;
        append(conv, systemItem(`${e.old} is now known as ${e.new}`));
      }
      const dm = state.conversations.get(dmKey(e.old));
      if (dm) {
        state.conversations.delete(dm.key);
        dm.key = dmKey(e.new);
        dm.name = e.new;
        state.conversations.set(dm.key, dm);
        if (state.current === dmKey(e.old)) state.current = dm.key;
        append(dm, systemItem(`${e.old} is now known as ${e.new}`));
      }
      if (isMe(e.old)) {
        const forced = mustLogIn();
        state.me = e.new;
        state.name = e.new;
        ui.me.textContent = e.new;
        if (forced) {
          state.renamed = true;
          closeAccountPanel();
          note(
            `You are now ${e.new}: the name ${e.old} is registered and you did not log in. /login ${e.old} takes it back.`,
            "error",
          );
        } else if (rooms.length === 0) {
          note(`You are now known as ${e.new}`);
        }
        renderAccount();
      }
      render();
      break;
    }
    case "members": {
      const conv = roomConv(e.room);
      conv.members = e.members ?? [];
      if (conv.key === state.current) renderMembers();
      break;
    }
    case "topic": {
      const conv = roomConv(e.room);
      conv.topic = e.text;
      append(
        conv,
        systemItem(e.text ? `${e.by} set the topic: ${e.text}` : `${e.by} cleared the topic`),
      );
      renderConversation();
      break;
    }
    case "topic_is": {
      const conv = roomConv(e.room);
      conv.topic = e.topic ? e.topic.text : "";
      if (conv.key === state.current) renderConversation();
      break;
    }
    case "away":
      for (const conv of roomsWith(e.name)) {
        for (const m of conv.members) if (fold(m.name) === fold(e.name)) m.away = e.message !== null;
      }
      renderMembers();
      break;
    case "away_status":
      note(e.away ? "You are now marked as away" : "You are no longer marked as away");
      break;
    case "recipient_away":
      note(`${e.name} is away: ${e.message}`);
      break;
    case "rooms":
      note(
        e.rooms.length === 0
          ? "No rooms"
          : "Rooms: " + e.rooms.map((r) => `#${r.name} (${r.members})`).join(", "),
      );
      break;
    case "user_info":
      note(
        `${e.name} is ${e.user}@${e.host} (${e.realname}); rooms: ` +
          (e.rooms.length ? e.rooms.map((r) => r.prefix + "#" + r.room).join(", ") : "none") +
          (e.away ? `; away: ${e.away}` : ""),
      );
      break;
    case "invited":
      note(`${e.by} invites you to #${e.room}; /join ${e.room} to accept`);
      break;
    case "invite_sent":
      note(`Invited ${e.name} to #${e.room}`);
      break;
    case "mode":
      note(`${e.by} changed the modes of #${e.room}`);
      break;
    case "killed":
      note(`You were removed from the server by ${e.by}: ${e.reason}`, "error");
      break;
    case "closing":
      state.closingCode = e.code;
      if (e.code === "quit") state.quitting = true;
      note(e.text, e.code === "quit" ? "" : "error");
      if (e.code === "shutdown") setStatus("reconnecting", "Server restarting…");
      break;
    case "pong":
      break;
    default:
      // Events this page does not know yet are skipped, as the protocol asks.
      break;
  }
}

/** Errors of a login or an account registration. */
const ACCOUNT_ERRORS = new Set([
  "login_failed",
  "login_throttled",
  "account_exists",
  "no_accounts",
  "already_logged_in",
]);

function onError(e) {
  const registering = state.me === null;
  if (typeof e.room === "string" || typeof e.with === "string") {
    // A history request failed; most of these only mean there is nothing to show.
    const conv = historyConv(e);
    if (conv) {
      conv.loading = null;
      conv.stale = false;
      if (e.code !== "unavailable") conv.loaded = true;
      renderMarker(conv);
    }
    if (e.code === "no_history") state.history = false;
    if (e.code === "unavailable" || e.code === "not_logged_in") note(e.text, "error");
    return;
  }
  if (ACCOUNT_ERRORS.has(e.code)) {
    state.pending = null;
    if (registering) {
      if (state.started && e.code === "already_logged_in" && state.attempt < 6) {
        // Our old connection may not have timed out yet: try again shortly.
        note(`${e.text}; trying again soon.`, "error");
        state.ws?.close();
        return;
      }
      state.name = null;
      state.started = false;
      showLogin(e.text);
      return;
    }
    if (!ui.accountPanel.hidden) {
      ui.accountError.textContent = e.text;
      ui.accountSubmit.disabled = false;
      ui.accountPassword.focus();
      return;
    }
    note(e.text, "error");
    return;
  }
  if (e.code === "name_registered" && !registering) {
    // The server's own words name a line-protocol command; the page has its own way.
    if (state.renamed) {
      state.renamed = false;
    } else {
      note("That name is registered to an account: /login NAME to use it, or pick another.", "error");
    }
    return;
  }
  if (registering && (e.code === "name_in_use" || e.code === "invalid_name")) {
    if (state.started && e.code === "name_in_use" && state.attempt < 6) {
      // Our old connection may not have timed out yet: try again shortly.
      note(`${e.text}; trying again soon.`, "error");
      state.ws?.close();
      return;
    }
    state.name = null;
    state.started = false;
    showLogin(e.text);
    return;
  }
  note(e.text, "error");
}

// ---------------------------------------------------------------- what the user does

const HELP = [
  "Commands:",
  "/join ROOM — join a room (created if new)",
  "/part [REASON] — leave this room (also the Leave button)",
  "/msg NAME TEXT — send a direct message",
  "/me ACTION — act, as in /me waves",
  "/nick NAME — change your name",
  "/topic [TEXT] — show or set this room's topic",
  "/who — list this room's members   /rooms — list every room",
  "/whois NAME — about someone   /away [MESSAGE] — go away or come back",
  "/register — make your name an account with a password   /login [NAME] — log in to an account",
  "/quit [REASON] — leave the chat   //text — send text that starts with /",
  "Keys: Enter sends, Alt+↑/↓ switch conversations, Alt+R rooms, Alt+M members, Esc back to typing.",
];

function tooLong(text) {
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > state.limits.max_message) {
    note(`That is too long (${bytes} bytes; the limit is ${state.limits.max_message}).`, "error");
    return true;
  }
  return false;
}

function say(conv, text, kind = "normal") {
  if (!conv) {
    note("Join a room or open a direct message first.", "error");
    return false;
  }
  if (tooLong(text)) return false;
  const target = conv.kind === "room" ? { room: conv.name } : { to: conv.name };
  return send({ type: "message", ...target, text, kind });
}

function joinRoom(name) {
  const room = name.trim().replace(/^#/, "");
  if (!room) return;
  const conv = state.conversations.get(roomKey(room));
  if (conv && conv.joined) {
    switchTo(conv.key);
    return;
  }
  state.pendingSwitch.add(roomKey(room));
  send({ type: "join", room });
}

function leave(conv, reason) {
  if (!conv) return;
  if (conv.kind === "room") {
    send({ type: "part", room: conv.name, ...(reason ? { reason } : {}) });
  } else {
    state.conversations.delete(conv.key);
    const next = orderedConversations()[0];
    state.current = next ? next.key : null;
    render();
  }
}

/** Runs what was typed in the message box; returns whether the box should be cleared. */
function submit(line) {
  const conv = currentConv();
  if (line.startsWith("//")) return say(conv, line.slice(1));
  if (!line.startsWith("/")) return say(conv, line);
  const [, verb = "", rest = ""] = /^\/(\S*)\s*(.*)$/s.exec(line) ?? [];
  const arg = rest.trim();
  switch (verb.toLowerCase()) {
    case "join":
    case "j":
      if (!arg) return note("Usage: /join ROOM", "error"), false;
      joinRoom(arg);
      return true;
    case "part":
    case "leave":
      leave(conv, arg);
      return true;
    case "msg":
    case "query": {
      const [, to = "", text = ""] = /^(\S+)\s*(.*)$/s.exec(arg) ?? [];
      if (!to) return note("Usage: /msg NAME TEXT", "error"), false;
      const dm = dmConv(to);
      switchTo(dm.key);
      return text ? say(dm, text) : true;
    }
    case "me":
      if (!arg) return note("Usage: /me ACTION", "error"), false;
      return say(conv, arg, "action");
    case "nick":
      if (!arg) return note("Usage: /nick NAME", "error"), false;
      return send({ type: "nick", name: arg });
    case "topic":
      if (!conv || conv.kind !== "room") return note("/topic works in a room", "error"), false;
      if (arg && tooLong(arg)) return false;
      return send(arg ? { type: "topic", room: conv.name, text: arg } : { type: "topic", room: conv.name });
    case "who":
      if (!conv || conv.kind !== "room") return note("/who works in a room", "error"), false;
      note(`Members of #${conv.name}: ${conv.members.map((m) => m.name).join(", ")}`);
      return true;
    case "rooms":
    case "list":
      return send({ type: "rooms" });
    case "whois":
      if (!arg) return note("Usage: /whois NAME", "error"), false;
      return send({ type: "whois", name: arg });
    case "away":
      return send(arg ? { type: "away", message: arg } : { type: "away" });
    case "register":
      // A password typed after the command by habit is never sent anywhere.
      openAccountPanel("register");
      return true;
    case "login": {
      const [name = state.me ?? ""] = arg.split(/\s+/).filter(Boolean);
      state.loginFor = name;
      openAccountPanel("login", name);
      return true;
    }
    case "quit":
      state.quitting = true;
      return send(arg ? { type: "quit", reason: arg } : { type: "quit" });
    case "help":
      for (const line of HELP) note(line);
      return true;
    default:
      note(`Unknown command /${verb}; /help lists commands`, "error");
      return false;
  }
}

ui.loginForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const name = ui.nameInput.value.trim();
  const password = ui.passwordInput.value;
  if (!name) {
    ui.loginError.textContent = "Pick a name first.";
    return;
  }
  if (new TextEncoder().encode(password).length > MAX_PASSWORD) {
    ui.loginError.textContent = `A password has at most ${MAX_PASSWORD} bytes.`;
    return;
  }
  ui.passwordInput.value = "";
  ui.loginButton.textContent = "Start chatting";
  ui.loginError.textContent = "";
  state.name = name;
  state.quitting = false;
  state.credentials = null;
  state.pending = password ? { account: name, password } : null;
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    send(password ? { type: "login", name, password } : { type: "register", name });
  } else {
    ui.loginButton.disabled = true;
    connect();
  }
});

// The button says what the form will do: join with a name, or log in to an account.
ui.passwordInput.addEventListener("input", () => {
  ui.loginButton.textContent = ui.passwordInput.value ? "Log in" : "Start chatting";
});

ui.accountButton.addEventListener("click", () => {
  if (!ui.accountPanel.hidden) {
    closeAccountPanel();
    return;
  }
  if (mustLogIn()) openAccountPanel("login", state.loginFor);
  else openAccountPanel("register");
});

// A new attempt clears the last complaint.
for (const input of [ui.accountPassword, ui.accountRepeat]) {
  input.addEventListener("input", () => {
    ui.accountError.textContent = "";
  });
}

ui.accountCancel.addEventListener("click", () => {
  closeAccountPanel();
  ui.messageInput.focus();
});

ui.accountForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const login = state.accountMode === "login";
  const password = ui.accountPassword.value;
  if (!password) {
    ui.accountError.textContent = "Enter a password.";
    return;
  }
  if (new TextEncoder().encode(password).length > MAX_PASSWORD) {
    ui.accountError.textContent = `A password has at most ${MAX_PASSWORD} bytes.`;
    return;
  }
  if (!login && password !== ui.accountRepeat.value) {
    ui.accountError.textContent = "The two passwords differ.";
    return;
  }
  const name = ui.accountName.value;
  ui.accountError.textContent = "";
  ui.accountPassword.value = "";
  ui.accountRepeat.value = "";
  ui.accountSubmit.disabled = true;
  state.pending = { account: name, password };
  if (!send(login ? { type: "login", name, password } : { type: "register_account", password })) {
    state.pending = null;
    ui.accountSubmit.disabled = false;
  }
});

// Scrolling up to the top loads the messages before.
ui.messages.addEventListener(
  "scroll",
  () => {
    if (ui.messages.scrollTop < LOAD_AT_PX) loadOlder(currentConv());
  },
  { passive: true },
);

ui.composer.addEventListener("submit", (e) => {
  e.preventDefault();
  const line = ui.messageInput.value;
  if (!line.trim()) return;
  if (submit(line)) ui.messageInput.value = "";
});

ui.joinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  joinRoom(ui.joinInput.value);
  ui.joinInput.value = "";
  ui.messageInput.focus();
});

ui.dmForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const name = ui.dmInput.value.trim();
  if (!name) return;
  ui.dmInput.value = "";
  switchTo(dmConv(name).key);
  ui.messageInput.focus();
});

ui.leaveButton.addEventListener("click", () => leave(currentConv()));
ui.reconnectNow.addEventListener("click", () => {
  state.attempt = 0;
  connect();
});
ui.toggleSidebar.addEventListener("click", () => togglePanel(ui.sidebar, ui.toggleSidebar));
ui.toggleMembers.addEventListener("click", () => togglePanel(ui.membersPanel, ui.toggleMembers));

document.addEventListener("keydown", (e) => {
  if (ui.chat.hidden) return;
  if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
    e.preventDefault();
    step(e.key === "ArrowUp" ? -1 : 1);
    ui.messageInput.focus();
  } else if (e.altKey && (e.key === "r" || e.key === "R")) {
    e.preventDefault();
    togglePanel(ui.sidebar, ui.toggleSidebar);
  } else if (e.altKey && (e.key === "m" || e.key === "M")) {
    e.preventDefault();
    togglePanel(ui.membersPanel, ui.toggleMembers);
  } else if (e.key === "Escape") {
    closePanels();
    closeAccountPanel();
    ui.messageInput.focus();
  }
});

// Coming back to the tab clears the unread count of the conversation on screen.
document.addEventListener("visibilitychange", () => {
  const conv = currentConv();
  if (!document.hidden && conv) {
    conv.unread = 0;
    renderLists();
    renderTitle();
  }
});

render();
