// The confab chat page: speaks the JSON protocol of docs/web-protocol.md over the WebSocket at /ws and draws rooms, direct messages and members.
//
// Every piece of text that comes from the network is put on the page with textContent or
// createTextNode, never as HTML, so a message like <img src=x onerror=alert(1)> shows as
// those characters.

/** Messages kept per conversation; older ones are dropped so a long session stays light. */
const HISTORY = 500;
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
  loginError: $("login-error"),
  loginButton: $("login-button"),
  chat: $("chat"),
  me: $("me"),
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
    conv = { key, kind, name, list, unread: 0, members: [], topic: "", joined: false };
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

/** Adds one line to a conversation, counting it as unread if it is not on screen. */
function append(conv, item, { unread = false } = {}) {
  const atEnd = isScrolledToEnd();
  conv.list.append(item);
  while (conv.list.childElementCount > HISTORY) conv.list.firstElementChild.remove();
  if (unread && (conv.key !== state.current || document.hidden)) {
    conv.unread += 1;
  }
  if (conv.key === state.current) scrollToEnd(atEnd);
  renderLists();
  renderTitle();
}

function timeElement(ms) {
  const when = ms ? new Date(ms) : new Date();
  const el = document.createElement("time");
  el.dateTime = when.toISOString();
  el.title = when.toLocaleString();
  el.textContent = when.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
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
  const conv = currentConv();
  if (conv) {
    append(conv, systemItem(text, className));
  } else if (className === "error") {
    ui.loginError.textContent = text;
  }
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
  ui.messages.replaceChildren(conv.list);
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
    for (const conv of state.conversations.values()) conv.members = [];
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
  conv.members = [];
  if (state.current === conv.key) {
    const next = orderedConversations()[0];
    state.current = next ? next.key : null;
  }
  render();
}

function onEvent(e) {
  switch (e.type) {
    case "hello":
      state.limits = e.limits ?? state.limits;
      state.defaultRoom = e.default_room ?? state.defaultRoom;
      if (state.name) send({ type: "register", name: state.name });
      break;
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
        if (state.pendingSwitch.delete(conv.key) || state.current === null) {
          state.current = conv.key;
          conv.unread = 0;
        }
        append(conv, systemItem(`You joined #${e.room}`));
        render();
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
        state.me = e.new;
        state.name = e.new;
        ui.me.textContent = e.new;
        if (rooms.length === 0) note(`You are now known as ${e.new}`);
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

function onError(e) {
  const registering = state.me === null;
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
  if (!name) {
    ui.loginError.textContent = "Pick a name first.";
    return;
  }
  ui.loginError.textContent = "";
  state.name = name;
  state.quitting = false;
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    send({ type: "register", name });
  } else {
    ui.loginButton.disabled = true;
    connect();
  }
});

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
