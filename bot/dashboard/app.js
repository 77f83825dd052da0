// The dashboard page: log in, then one websocket brings batched updates (see docs/dashboard.md).
// Every state-changing request carries the session's CSRF token; the cookie itself is HttpOnly.
const MAX_ROWS = 300; // rows kept per list; older ones scroll away

const state = { csrf: null, role: null, socket: null, more: 0 };
const $ = (id) => document.getElementById(id);

async function loadSession() {
  const answer = await fetch("/dashboard/session", { credentials: "same-origin" });
  if (!answer.ok) return false;
  const session = await answer.json();
  state.csrf = session.csrf;
  state.role = session.role;
  return true;
}

export async function post(path, body) {
  const answer = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf },
    body: JSON.stringify(body),
  });
  if (!answer.ok) throw new Error(await answer.text());
  return answer.json();
}

function showRoom() {
  $("login").hidden = true;
  $("room").hidden = false;
  $("role").textContent = state.role;
  document.body.dataset.role = state.role;
  connect();
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/dashboard/feed`);
  state.socket = socket;
  socket.onopen = () => { $("connection").textContent = "live"; $("connection").className = "on"; };
  socket.onclose = () => {
    $("connection").textContent = "offline";
    $("connection").className = "off";
    setTimeout(() => loadSession().then((ok) => (ok ? connect() : location.reload())), 2000);
  };
  socket.onmessage = (message) => receive(JSON.parse(message.data));
}

function receive(update) {
  if (update.type === "hello") {
    update.replies.forEach(showReply);
    return;
  }
  if (update.type !== "batch") return;
  for (const item of update.items) {
    if (item.type === "heard") showHeard(item);
    else if (item.type === "outcome") showOutcome(item);
    else if (item.type === "reply" || item.type === "notice") showReply(item);
    else if (item.type === "status") showStatus(item);
  }
  if (update.more) {
    state.more += update.more;
    $("more").textContent = `+${state.more} more`;
  }
}

function row(list, id) {
  let item = id ? document.getElementById(id) : null;
  if (!item) {
    item = document.createElement("li");
    if (id) item.id = id;
    list.prepend(item);
    while (list.children.length > MAX_ROWS) list.lastChild.remove();
  }
  return item;
}

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text; // viewer text is never HTML
  return element;
}

function showHeard(item) {
  const line = row($("heard"), `heard-${item.id}`);
  line.className = "heard";
  line.dataset.channel = item.channel;
  const verdict = item.verdict.passes ? (item.verdict.judged ? "passed" : "") : "refused: " + item.verdict.reasons.join(", ");
  line.replaceChildren(span("author", item.author), span("text", item.text));
  if (verdict) line.append(span(item.verdict.passes ? "verdict" : "verdict refused", verdict));
  line.append(span("outcome", ""));
}

function showOutcome(item) {
  const line = document.getElementById(`heard-${item.id}`);
  if (line) line.querySelector(".outcome").textContent = item.outcome.replace("_", " ");
}

function showReply(item) {
  const line = row($("replies"), `reply-${item.id}`);
  line.className = `reply ${item.state || "done"}`;
  line.dataset.channel = item.channel;
  line.replaceChildren(span("author", item.name), span("text", item.text));
}

function showStatus(item) {
  const parts = [];
  for (const [platform, status] of Object.entries(item.platforms)) {
    const budgets = Object.entries(status.budgets).map(([channel, [used, limit]]) => `${channel} ${used}/${limit}`);
    parts.push(`${platform}: queue ${status.queued}; sends ${budgets.join(", ") || "none yet"}`);
  }
  $("status").textContent = parts.join("\n") || "no platform reports yet";
}

async function logIn(event) {
  event.preventDefault();
  const answer = await fetch("/dashboard/login", {
    method: "POST",
    credentials: "same-origin",
    body: new URLSearchParams({ token: $("token").value }),
  });
  if (!answer.ok) {
    $("login-error").textContent = "Wrong token: use the one costar printed at its first start.";
    return;
  }
  $("token").value = "";
  const session = await answer.json();
  state.csrf = session.csrf;
  state.role = session.role;
  showRoom();
}

$("login").addEventListener("submit", logIn);
if (await loadSession()) showRoom();
else $("login").hidden = false;
