// The dashboard page: log in, then one websocket brings batched updates (see docs/dashboard.md).
// Every state-changing request carries the session's CSRF token; the cookie itself is HttpOnly.
const MAX_ROWS = 300; // rows kept per list; older ones scroll away

const state = { csrf: null, role: null, socket: null, more: 0, muted: [], channels: new Set() };
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
  showCards();
  showFigures();
  setInterval(showFigures, 10000);
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
    showMuted(update.muted);
    $("held").replaceChildren();
    update.held.forEach(showHeld);
    update.replies.forEach(showReply);
    return;
  }
  if (update.type !== "batch") return;
  for (const item of update.items) {
    if (item.type === "heard") showHeard(item);
    else if (item.type === "outcome") showOutcome(item);
    else if (item.type === "reply" || item.type === "notice") showReply(item);
    else if (item.type === "status") showStatus(item);
    else if (item.type === "mute") showMuted(item.scopes);
    else if (item.type === "held") showHeld(item);
    else if (item.type === "settled") document.getElementById(`held-${item.id}`)?.remove();
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

// -- mute ---------------------------------------------------------------------------------

function isMuted(channel) {
  const platform = channel.split(":")[0];
  return state.muted.some((scope) => scope === "*" || scope === platform || scope === channel);
}

function showMuted(scopes) {
  state.muted = scopes;
  document.body.classList.toggle("muted", scopes.length > 0);
  $("mute-state").textContent = scopes.length ? `MUTED: ${scopes.map((s) => (s === "*" ? "everywhere" : s)).join(", ")}` : "";
  for (const line of document.querySelectorAll("li[data-channel]")) line.classList.toggle("muted", isMuted(line.dataset.channel));
}

function noteChannel(channel) {
  if (state.channels.has(channel)) return;
  state.channels.add(channel);
  for (const list of [$("mute-scope"), $("library-channel")]) {
    const option = document.createElement("option");
    option.value = option.textContent = channel;
    list.append(option);
  }
  if (state.channels.size === 1) showChannel();
}

async function setMuted(muted) {
  window.mutePressedAt = Date.now(); // the browser test measures from here
  const answer = await post("/dashboard/action/mute", { scope: $("mute-scope").value, muted });
  showMuted(answer.scopes);
}

// -- approve-before-send -----------------------------------------------------------------------

function showHeld(item) {
  const entry = document.createElement("li");
  entry.id = `held-${item.id}`;
  entry.dataset.id = item.id;
  entry.dataset.channel = item.channel;
  const answering = span("answering", `${item.answering.author}: ${item.answering.text}`);
  const buttons = document.createElement("span");
  buttons.className = "moderator-only";
  for (const [label, action] of [["Send (a)", "send"], ["Edit (e)", "edit"], ["Drop (d)", "drop"]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.className = action;
    button.addEventListener("click", () => (action === "edit" ? startEdit(entry) : review(entry, action)));
    buttons.append(button);
  }
  entry.append(answering, span("author", item.name), span("text", item.text), buttons, span("error", ""));
  $("held").append(entry); // oldest first: the top one goes stale first
}

async function review(entry, decision, text) {
  try {
    await post("/dashboard/action/review", { id: entry.dataset.id, decision, text });
    entry.remove();
  } catch (error) {
    entry.querySelector(".error").textContent = error.message;
  }
}

function startEdit(entry) {
  if (entry.querySelector("textarea")) return;
  const editor = document.createElement("textarea");
  editor.value = entry.querySelector(".text").textContent;
  editor.rows = 3;
  editor.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      review(entry, "edit", editor.value);
    } else if (event.key === "Escape") {
      editor.remove();
    }
  });
  entry.querySelector(".text").after(editor);
  editor.focus();
}

function showHeard(item) {
  noteChannel(item.channel);
  const line = row($("heard"), `heard-${item.id}`);
  line.className = "heard";
  line.dataset.channel = item.channel;
  line.dataset.at = item.at; // when it was stored (s): bench/dashboard_lag.py times the page by it
  const verdict = item.verdict.passes ? (item.verdict.judged ? "passed" : "") : "refused: " + item.verdict.reasons.join(", ");
  line.classList.toggle("muted", isMuted(item.channel));
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
  line.classList.toggle("muted", isMuted(item.channel));
  line.dataset.channel = item.channel;
  // A retraction carries no text: the words taken off the stream stay here, struck through.
  if (item.state === "retracted" && line.querySelector(".text")) return;
  line.replaceChildren(span("author", item.name), span("text", item.text));
  if (item.type === "notice") line.append(span("kind", item.kind)); // a raid thank-you, a timer, a command
}

function showStatus(item) {
  const parts = [];
  for (const [platform, status] of Object.entries(item.platforms)) {
    const budgets = Object.entries(status.budgets).map(([channel, [used, limit]]) => `${channel} ${used}/${limit}`);
    parts.push(`${platform}: queue ${status.queued}; sends ${budgets.join(", ") || "none yet"}`);
  }
  $("status").textContent = parts.join("\n") || "no platform reports yet";
}

// -- persona and memory ---------------------------------------------------------------------------

async function get(name, query) {
  const answer = await fetch(`/dashboard/api/${name}?${new URLSearchParams(query)}`, { credentials: "same-origin" });
  if (!answer.ok) throw new Error(await answer.text());
  return answer.json();
}

async function showChannel() {
  const channel = $("library-channel").value;
  if (!channel) return;
  const [choice, summary] = await Promise.all([get("personas", { channel }), get("summary", { channel })]);
  $("persona-choice").replaceChildren(
    ...choice.personas.map((persona) => {
      const option = document.createElement("option");
      option.value = persona.id;
      option.textContent = persona.name;
      option.selected = persona.id === choice.current;
      return option;
    }),
  );
  $("persona-choice").dataset.current = choice.current;
  $("summary").textContent = summary.summary ? summary.summary.text : "no summary yet";
}

async function switchPersona() {
  const answer = await post("/dashboard/action/persona", { channel: $("library-channel").value, persona: $("persona-choice").value });
  $("persona-choice").dataset.current = answer.persona;
}

async function searchViewers(event) {
  event.preventDefault();
  const found = await get("viewers", { q: $("viewer-query").value });
  $("viewers").replaceChildren(
    ...found.viewers.map((viewer) => {
      const entry = document.createElement("li");
      entry.append(span("author", viewer.name), span("where", `${viewer.platform} · ${viewer.lines} lines`));
      entry.addEventListener("click", () => showViewer(viewer.platform, viewer.id));
      return entry;
    }),
  );
}

async function showViewer(platform, id) {
  const about = await get("viewer", { platform, id });
  const box = $("viewer");
  box.hidden = false;
  box.dataset.platform = platform;
  box.dataset.id = id;
  $("viewer-error").textContent = "";
  $("viewer-name").textContent = about.viewer.name;
  $("viewer-notes").replaceChildren(
    ...about.notes.map((note) => {
      const entry = document.createElement("li");
      entry.append(span("text", note.text), span("where", `${note.kind} · ${note.place} · ${note.at.slice(0, 16)}`));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "moderator-only delete-note";
      remove.textContent = "Delete";
      remove.addEventListener("click", async () => {
        await post("/dashboard/action/delete-note", { platform, note: note.id });
        entry.remove();
      });
      entry.append(remove);
      return entry;
    }),
  );
  $("viewer-lines").replaceChildren(
    ...about.lines.map((line) => {
      const entry = document.createElement("li");
      entry.append(span("text", line.text), span("where", `${line.channel} · ${line.at.slice(0, 16)}`));
      return entry;
    }),
  );
}

async function forgetViewer() {
  const box = $("viewer");
  try {
    await post("/dashboard/action/forget", { platform: box.dataset.platform, id: box.dataset.id, confirm: $("forget-confirm").value });
  } catch (error) {
    $("viewer-error").textContent = error.message;
    return;
  }
  box.hidden = true;
  $("forget-confirm").value = "";
  $("viewers").replaceChildren();
}

// -- figures: plain SVG line charts, redrawn every 10 s -----------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#7cf2a4", "#ffd166", "#6cb4ff", "#f28c7c"];

function chart(id, title, lines, format) {
  const figure = document.createElement("figure");
  figure.id = `figure-${id}`;
  const caption = document.createElement("figcaption");
  const points = Object.values(lines).flat();
  const newest = Object.entries(lines).map(([name, line]) => (line.length ? `${name} ${format(line[line.length - 1][1])}` : "")).filter(Boolean);
  caption.textContent = `${title}: ${newest.join(" · ") || "no data yet"}`;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 300 100");
  svg.setAttribute("preserveAspectRatio", "none");
  if (points.length) {
    const times = points.map((point) => point[0]);
    const [start, end] = [Math.min(...times), Math.max(...times)];
    const top = Math.max(...points.map((point) => point[1]), 1e-9);
    Object.values(lines).forEach((line, number) => {
      const drawn = document.createElementNS(SVG, "polyline");
      drawn.setAttribute("stroke", COLOURS[number % COLOURS.length]);
      drawn.setAttribute("points", line.map(([at, value]) => `${end > start ? ((at - start) / (end - start)) * 300 : 300},${98 - (value / top) * 94}`).join(" "));
      svg.append(drawn);
    });
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("class", "axis");
    label.setAttribute("x", "2");
    label.setAttribute("y", "10");
    label.textContent = format(top);
    svg.append(label);
  }
  figure.append(caption, svg);
  return figure;
}

async function showFigures() {
  const series = await get("figures", {});
  const seconds = (value) => `${value.toFixed(2)} s`;
  const states = ["closed", "half-open", "open"];
  $("figures").replaceChildren(
    chart("replies", "Replies per minute", { replies: series.replies_per_min }, (value) => value.toFixed(1)),
    chart("latency", "Reply latency", { p50: series.latency_p50, p95: series.latency_p95 }, seconds),
    chart("circuit", "Backend circuit breaker", { state: series.circuit }, (value) => states[Math.round(value)] ?? "?"),
    chart("memory", "Memory on disk", { size: series.memory_bytes }, (value) => `${(value / 1e6).toFixed(2)} MB`),
    chart("budget", "Send budget use (busiest channel)", series.budget_use, (value) => `${Math.round(value * 100)}%`),
  );
}

// -- cards ----------------------------------------------------------------------------------------

async function showCards() {
  const listed = await get("cards", {});
  $("cards").replaceChildren(
    ...listed.cards.map((card) => {
      const entry = document.createElement("li");
      entry.id = `card-${card.id}`;
      const adapter = card.adapter ? `adapter ${card.adapter} in use` : "no adapter in use";
      entry.append(span("author", card.name), span("where", `${card.file ?? "built in"} · ${adapter}`));
      for (const line of card.check.lines) entry.append(span(`check ${card.check.ok ? "ok" : "bad"}`, " " + line));
      if (card.editable) {
        const edit = document.createElement("button");
        edit.type = "button";
        edit.className = "edit-card";
        edit.textContent = "Reactions and commands";
        edit.addEventListener("click", () => editCard(card.id, card.name));
        entry.append(edit);
      }
      return entry;
    }),
  );
  $("broken-cards").textContent = listed.broken.join("\n");
}

async function editCard(id, name) {
  const card = await get("card", { id });
  $("card-editor").hidden = false;
  $("card-editor").dataset.id = id;
  $("card-editing").textContent = name;
  $("card-text").value = card.text;
  $("card-result").textContent = "";
}

async function saveCard() {
  const result = $("card-result");
  try {
    const saved = await post("/dashboard/action/card-save", { id: $("card-editor").dataset.id, text: $("card-text").value });
    result.className = "ok";
    result.textContent = `saved: commands ${saved.commands.map((name) => "!" + name).join(", ") || "none"}`;
    showCards();
  } catch (error) {
    result.className = "bad";
    result.textContent = error.message;
  }
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
$("mute").addEventListener("click", () => setMuted(true));
$("library-channel").addEventListener("change", showChannel);
$("persona-switch").addEventListener("click", switchPersona);
$("viewer-search").addEventListener("submit", searchViewers);
$("forget").addEventListener("click", forgetViewer);
$("card-save").addEventListener("click", saveCard);
$("approve-set").addEventListener("click", () =>
  post("/dashboard/action/approve-mode", { scope: $("mute-scope").value, mode: $("approve-mode").value }),
);
$("unmute").addEventListener("click", () => setMuted(false));
document.addEventListener("keydown", (event) => {
  if (state.role !== "moderator" || event.target.closest("input, textarea, select")) return;
  const top = $("held").firstElementChild;
  if (event.key === "m") setMuted(true);
  else if (top && event.key === "a") review(top, "send");
  else if (top && event.key === "d") review(top, "drop");
  else if (top && event.key === "e") { event.preventDefault(); startEdit(top); }
});
if (await loadSession()) showRoom();
else $("login").hidden = false;
