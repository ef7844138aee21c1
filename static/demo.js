// The demo page's script (served at /demo.js, no build step): a lobby on top of the Signal Fish
// client (/client.js), a WebRTC DataChannel mesh signalled through the server (targeted GameData,
// docs/spec/EXTENSIONS.md E4), chat, and a tiny real-time game — fish on a shared pond — whose positions
// travel peer to peer, or through the server's relay when peer to peer is not available
// (`?p2p=off` forces that). The authority holder runs the round clock and broadcasts the game
// state through the relay, which is also how spectators watch.
import { SignalFishClient } from "/client.js";

const GAME_NAME = "fish-pond-demo";
/** Loopback and LAN peers need no STUN server: host candidates suffice. */
const RTC_CONFIG = { iceServers: [] };
const params = new URLSearchParams(location.search);
const P2P_ENABLED = params.get("p2p") !== "off";
const INVITE_CODE = (params.get("room") ?? "").trim().toUpperCase();
const WORLD = { w: 480, h: 320 };
const SPEED = 150; // px per second
const POSITION_HZ = 15;
const STATE_HZ = 5;
const ROUND_MS = 30_000;
const EAT_DISTANCE = 18;
/** A peer's own position update is preferred over the authority's copy for this long, ms. */
const DIRECT_FRESH_MS = 600;

const $ = (id) => document.getElementById(id);
const ui = {
  connection: $("connection"),
  retry: $("retry"),
  entry: $("entry"),
  invite: $("invite"),
  name: $("name-input"),
  seats: $("seats"),
  code: $("code-input"),
  create: $("create"),
  join: $("join"),
  spectate: $("spectate"),
  entryError: $("entry-error"),
  roomPanel: $("room-panel"),
  roomCode: $("room-code"),
  role: $("role"),
  leave: $("leave"),
  shareLink: $("share-link"),
  copyLink: $("copy-link"),
  roomError: $("room-error"),
  roomNotice: $("room-notice"),
  canvas: $("game"),
  clock: $("clock"),
  startRound: $("start-round"),
  scores: $("scores"),
  transport: $("transport"),
  lobbyState: $("lobby-state"),
  authority: $("authority"),
  spectators: $("spectators"),
  players: $("players"),
  ready: $("ready"),
  authorityButton: $("authority-button"),
  p2p: $("p2p-status"),
  chatLog: $("chat-log"),
  chatForm: $("chat-form"),
  chatInput: $("chat-input"),
  chatSend: $("chat-send"),
  log: $("log"),
};
ui.name.value = sessionStorage.getItem("signal-fish-demo:name") ??
  `Player-${Math.random().toString(36).slice(2, 6)}`;

function log(text) {
  const line = document.createElement("div");
  line.textContent = `${new Date().toISOString().slice(11, 23)} ${text}`;
  ui.log.append(line);
  ui.log.scrollTop = ui.log.scrollHeight;
}

function chatLine(who, text, relayed) {
  const line = document.createElement("div");
  line.className = "chat-line";
  line.textContent = `${who}: ${text}${relayed ? " (relayed)" : ""}`;
  ui.chatLog.append(line);
  ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
}

function setState(element, state, text = state) {
  element.dataset.state = state;
  element.textContent = text;
}

/** Shows an error where the user is looking: under the entry form, or in the room panel. */
function showError(text) {
  const inRoom = client.room !== undefined;
  (inRoom ? ui.roomError : ui.entryError).textContent = text;
  (inRoom ? ui.entryError : ui.roomError).textContent = "";
  log(`error: ${text}`);
}

function clearErrors() {
  ui.entryError.textContent = "";
  ui.roomError.textContent = "";
}

/** Plain words for the refusals a player can cause here (docs/spec/PROTOCOL.md §9). */
function explain(error, code) {
  switch (error.code) {
    case "ROOM_NOT_FOUND":
      return `Room not found: ${code ?? "that code"}. Check the code, or create a room.`;
    case "ROOM_FULL":
      return `Room ${code ?? ""} is full. You can still spectate.`;
    case "RATE_LIMIT_EXCEEDED":
      return `Slow down: ${error.message}`;
    case "AUTHORITY_CONFLICT":
      return "Someone else holds authority; they must release it first.";
    default:
      return error.message ?? String(error);
  }
}

const client = new SignalFishClient(location.origin, {
  presenceEvents: true,
  auth: { app_id: "signal-fish-demo", platform: "web" },
  reconnect: { whenIdle: true, maxAttempts: 12, maxElapsedMs: 120_000 },
});

// ---------------------------------------------------------------------------------------------
// Connection status: connecting… / connected / reconnecting… / reconnected / lost

function showConnection(state, text) {
  setState(ui.connection, state, text);
  ui.retry.hidden = !(state === "lost" && client.status === "closed");
}

client.on("status", ({ status, previous }) => {
  if (status === "connecting") showConnection("connecting", "connecting…");
  else if (status === "reconnecting") showConnection("reconnecting", "reconnecting…");
  else if (status === "open") {
    showConnection(
      previous === "reconnecting" ? "reconnected" : "open",
      previous === "reconnecting" ? "reconnected" : "connected",
    );
  } else if (status === "closed") showConnection("lost", "lost — server unreachable");
});
client.on("reconnecting", ({ attempt, delayMs }) => {
  showConnection("reconnecting", `reconnecting… (attempt ${attempt})`);
  log(`connection lost; attempt ${attempt} in ${delayMs} ms`);
});
client.on("reconnected", ({ missed_events, replay_truncated }) => {
  log(
    `seat restored; ${missed_events.length} missed message(s)${
      replay_truncated ? " (some lost)" : ""
    }`,
  );
  ui.roomNotice.textContent = "Reconnected: your seat was kept.";
  greetPeers();
});
client.on("respectated", ({ room_code }) => {
  ui.roomNotice.textContent = `Reconnected: watching room ${room_code} again.`;
});
client.on("reconnectFailed", (error) => {
  const seat = lastRoomCode ? ` in room ${lastRoomCode}` : "";
  if (client.status === "open") {
    showConnection("lost", "reconnected — seat lost");
    if (lastRoomCode) ui.code.value = lastRoomCode;
    showError(
      `Your place${seat} is gone (${error.message}). The server may have restarted without ` +
        "keeping its rooms: join again, or create a new room.",
    );
  } else {
    showConnection("lost", "lost — server unreachable");
    showError(`Lost the connection to the server${seat}.`);
  }
  closeAllPeers();
});
ui.retry.addEventListener("click", () => location.reload());

// ---------------------------------------------------------------------------------------------
// Lobby view

let lastRoomCode = INVITE_CODE || undefined;

function nameOf(id) {
  return client.room?.players.find((p) => p.id === id)?.name ?? "peer";
}

/** Distinct colours by seat order (up to 4 seats; more wrap around). */
const PALETTE = ["#ff6b9a", "#ffb347", "#5ec8ff", "#7ee081", "#c89bff", "#f2f27a"];

function colorOf(id) {
  const seat = client.room?.players.findIndex((p) => p.id === id) ?? -1;
  return PALETTE[Math.max(0, seat) % PALETTE.length];
}

function render(room) {
  const inRoom = room !== null && room !== undefined;
  ui.entry.hidden = inRoom;
  ui.roomPanel.hidden = !inRoom;
  if (inRoom) {
    lastRoomCode = room.roomCode;
    const link = `${location.origin}/?room=${room.roomCode}`;
    ui.shareLink.value = link;
    if (location.search !== `?room=${room.roomCode}`) history.replaceState(null, "", link);
    ui.role.textContent = room.role === "spectator" ? "(spectating)" : "";
  }
  ui.roomCode.textContent = inRoom ? room.roomCode : "—";
  ui.lobbyState.textContent = inRoom ? room.lobbyState : "—";
  ui.spectators.textContent = inRoom ? String(room.spectators.length) : "0";
  const holder = inRoom ? room.players.find((p) => p.id === room.authorityPlayer) : undefined;
  ui.authority.textContent = holder ? holder.name : "nobody";
  const now = Date.now();
  ui.players.replaceChildren(
    ...(inRoom ? room.players : []).map((player) => {
      const item = document.createElement("li");
      item.dataset.id = player.id;
      const self = player.id === room.selfId;
      const dropped = room.dropped.find((d) => d.player_id === player.id);
      item.className = [self ? "self" : "", dropped ? "dropped" : ""].join(" ").trim();
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colorOf(player.id);
      const marks = [
        player.is_ready ? "✔ ready" : "not ready",
        player.is_authority ? "★ authority" : "",
        dropped
          ? `⚠ dropped (seat held ${Math.max(0, Math.ceil((dropped.heldUntil - now) / 1000))} s)`
          : "",
        self ? "(you)" : room.role === "player" && !dropped ? transportTo(player.id) : "",
      ].filter(Boolean).join(" · ");
      item.append(swatch, `${player.name} — ${marks}`);
      return item;
    }),
  );
  const me = inRoom ? room.players.find((p) => p.id === room.selfId) : undefined;
  ui.ready.disabled = !me;
  ui.ready.textContent = me?.is_ready ? "Not ready" : "Ready";
  ui.authorityButton.disabled = !me || room.supportsAuthority === false;
  ui.authorityButton.textContent = me?.is_authority ? "Release authority" : "Claim authority";
  ui.startRound.disabled = !me?.is_authority || game.round.running;
  const others = inRoom && room.role === "player" ? room.players.length - 1 : 0;
  ui.chatInput.disabled = others === 0;
  ui.chatSend.disabled = others === 0;
  renderTransport();
}

client.on("room", (room) => {
  if (room === null) {
    closeAllPeers();
    resetGame();
    ui.roomNotice.textContent = "";
    if (location.search.startsWith("?room=")) history.replaceState(null, "", "/");
  }
  render(room);
});
// Dropped-seat countdowns tick.
setInterval(() => {
  if (client.room?.dropped.length) render(client.room);
}, 1000);

client.on("error", (error) => showError(explain(error)));
client.on("PlayerJoined", ({ player }) => log(`${player.name} joined`));
client.on("PlayerLeft", ({ player_id }) => {
  log(`${nameOf(player_id)} left`);
  closePeer(player_id);
  delete game.players[player_id];
});
client.on("PlayerDisconnected", ({ player_id, seat_held_secs }) => {
  log(`${nameOf(player_id)} dropped; seat held for ${seat_held_secs} s`);
});
client.on("PlayerReconnected", ({ player_id }) => log(`${nameOf(player_id)} is back`));
client.on("LobbyStateChanged", ({ lobby_state }) => log(`lobby is ${lobby_state}`));
client.on("GameStarting", () => {
  log("everyone is ready: GameStarting");
  if (isAuthority()) startRound();
});
client.on("AuthorityChanged", ({ authority_player, you_are_authority }) => {
  log(`authority: ${authority_player ? nameOf(authority_player) : "nobody"}`);
  if (you_are_authority) takeOverClock();
});
client.on("RoomLeft", () => log("left the room"));
client.on("SpectatorLeft", ({ reason }) => log(`stopped watching (${reason ?? "left"})`));

async function attempt(what, action) {
  clearErrors();
  try {
    await action();
  } catch (error) {
    showError(explain(error, ui.code.value.trim().toUpperCase()));
    log(`${what} failed: ${error.code ?? error.name}: ${error.message}`);
  }
}

function playerName() {
  const name = ui.name.value.trim();
  if (!name) throw new Error("Type your name first.");
  sessionStorage.setItem("signal-fish-demo:name", name);
  return name;
}

/** Looks the room up first (GET /v2/rooms/{game}/{code}), so a typo never creates a room. */
async function existingRoom() {
  const code = ui.code.value.trim().toUpperCase();
  if (!code) throw new Error("Type the room code first.");
  const summary = await client.lookupRoom(GAME_NAME, code);
  if (!summary) throw Object.assign(new Error("Room not found"), { code: "ROOM_NOT_FOUND" });
  return summary;
}

ui.create.addEventListener("click", () =>
  attempt("create", async () => {
    const room = await client.create({
      game_name: GAME_NAME,
      player_name: playerName(),
      max_players: Number(ui.seats.value),
      authority_handover: true,
    });
    log(`created room ${room.room_code}; share the link`);
  }));

ui.join.addEventListener("click", () =>
  attempt("join", async () => {
    const name = playerName();
    const summary = await existingRoom();
    if (summary.players >= summary.max_players) {
      throw Object.assign(new Error("Room is full"), { code: "ROOM_FULL" });
    }
    const room = await client.join({
      game_name: GAME_NAME,
      room_code: summary.room_code,
      player_name: name,
    });
    log(`joined room ${room.room_code}`);
  }));

ui.spectate.addEventListener("click", () =>
  attempt("spectate", async () => {
    const name = playerName();
    const summary = await existingRoom();
    await client.spectate({
      game_name: GAME_NAME,
      room_code: summary.room_code,
      spectator_name: name,
    });
    log(`watching room ${summary.room_code}`);
  }));

ui.leave.addEventListener("click", () =>
  attempt("leave", async () => {
    closeAllPeers();
    await client.leave();
  }));

ui.ready.addEventListener("click", () =>
  attempt("ready", async () => {
    const me = client.room?.players.find((p) => p.id === client.selfId);
    await client.setReady(!me?.is_ready);
  }));

ui.authorityButton.addEventListener("click", () =>
  attempt("authority", async () => {
    const me = client.room?.players.find((p) => p.id === client.selfId);
    await client.requestAuthority(!me?.is_authority);
  }));

ui.copyLink.addEventListener("click", async () => {
  ui.shareLink.select();
  try {
    await navigator.clipboard.writeText(ui.shareLink.value);
    ui.roomNotice.textContent = "Link copied.";
  } catch {
    ui.roomNotice.textContent = "Select the link and copy it.";
  }
});

ui.startRound.addEventListener("click", () => startRound());

// ---------------------------------------------------------------------------------------------
// Peer-to-peer mesh. The player already in the room offers to each newcomer (and to a player
// who says "hello" after coming back); offer, answer and ICE candidates are targeted GameData.

/** Peer id → { pc, channel, pendingCandidates }. */
const peers = new Map();

function channelOpen(id) {
  return peers.get(id)?.channel?.readyState === "open";
}

function transportTo(id) {
  return channelOpen(id) ? "P2P" : "relay";
}

function renderTransport() {
  const room = client.room;
  if (!room) {
    ui.transport.textContent = "—";
    setState(ui.p2p, "idle");
    return;
  }
  if (room.role === "spectator") {
    ui.transport.textContent = "watching through the server relay";
    setState(ui.p2p, "idle", "spectators watch through the relay");
    return;
  }
  const others = room.players.filter((p) => p.id !== room.selfId);
  const direct = others.filter((p) => channelOpen(p.id)).length;
  ui.transport.textContent = others.length === 0
    ? "waiting for other players"
    : `${direct}/${others.length} peer(s) over the DataChannel, ${
      others.length - direct
    } through the relay${P2P_ENABLED ? "" : " (peer to peer off: ?p2p=off)"}`;
  if (others.length === 0) setState(ui.p2p, "idle");
  else if (direct === others.length) setState(ui.p2p, "open");
  else if (direct > 0) setState(ui.p2p, "partial", "partly open (the rest relayed)");
  else setState(ui.p2p, "relay", P2P_ENABLED ? "connecting… (relayed meanwhile)" : "off (relay)");
}

function closePeer(id) {
  const peer = peers.get(id);
  if (!peer) return;
  peers.delete(id);
  peer.channel?.close();
  peer.pc.close();
  renderTransport();
}

function closeAllPeers() {
  for (const id of [...peers.keys()]) closePeer(id);
}

/**
 * A fresh connection to peer `id`. `sid` names this negotiation: answers and ICE candidates carry
 * it, so messages of an older attempt (e.g. from before a reload) never reach a newer one.
 */
function newPeer(id, sid) {
  closePeer(id);
  const pc = new RTCPeerConnection(RTC_CONFIG);
  const peer = { pc, sid, channel: undefined, pendingCandidates: [] };
  peers.set(id, peer);
  pc.onicecandidate = ({ candidate }) => {
    if (candidate) relay(id, { signal: "ice", sid, candidate: candidate.toJSON() });
  };
  pc.onconnectionstatechange = () => {
    log(`peer ${nameOf(id)}: ${pc.connectionState}`);
    if (pc.connectionState === "failed") render(client.room); // Relay takes over.
  };
  pc.ondatachannel = ({ channel }) => useChannel(id, peer, channel);
  return peer;
}

function useChannel(id, peer, channel) {
  peer.channel = channel;
  channel.onopen = () => {
    log(`DataChannel to ${nameOf(id)} open`);
    render(client.room);
  };
  channel.onclose = () => render(client.room);
  channel.onmessage = ({ data }) => {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    receive(id, message, false);
  };
}

/**
 * Runs a fire-and-forget send; a connection that is dropping right now throws, and the
 * reconnection (or the status shown) takes it from there.
 */
function trySend(send) {
  try {
    send();
  } catch (error) {
    if (error.name !== "SignalFishConnectionError") throw error;
  }
}

/** Sends `message` to one peer through the server (targeted GameData). */
function relay(id, message) {
  if (client.status === "open" && client.room?.role === "player") {
    trySend(() => client.sendTo(id, message));
  }
}

/** Sends `message` to one peer: over its DataChannel when open, else through the relay. */
function sendToPeer(id, message) {
  const peer = peers.get(id);
  if (peer?.channel?.readyState === "open") peer.channel.send(JSON.stringify(message));
  else relay(id, message);
}

function otherPlayers() {
  const room = client.room;
  if (!room || room.role !== "player") return [];
  return room.players.filter((p) => p.id !== room.selfId).map((p) => p.id);
}

async function offerTo(id) {
  if (!P2P_ENABLED) return;
  const peer = newPeer(id, Math.random().toString(36).slice(2));
  useChannel(id, peer, peer.pc.createDataChannel("pond"));
  await peer.pc.setLocalDescription(await peer.pc.createOffer());
  if (peers.get(id) !== peer) return; // Superseded meanwhile.
  relay(id, { signal: "offer", sid: peer.sid, sdp: peer.pc.localDescription.sdp });
  log(`sent offer to ${nameOf(id)}`);
}

/**
 * After coming back (reload or reconnection): ask every peer without an open channel to offer
 * (the returning side never offers itself, so two offers never cross).
 */
function greetPeers() {
  for (const id of otherPlayers()) {
    if (!channelOpen(id)) relay(id, { signal: "hello" });
  }
}

async function flushCandidates(peer) {
  for (const candidate of peer.pendingCandidates.splice(0)) {
    await peer.pc.addIceCandidate(candidate);
  }
}

async function onSignal(from, data) {
  switch (data.signal) {
    case "hello":
      await offerTo(from);
      break;
    case "offer": {
      if (!P2P_ENABLED) return; // Stay on the relay.
      const peer = newPeer(from, data.sid);
      await peer.pc.setRemoteDescription({ type: "offer", sdp: data.sdp });
      await flushCandidates(peer);
      await peer.pc.setLocalDescription(await peer.pc.createAnswer());
      relay(from, { signal: "answer", sid: data.sid, sdp: peer.pc.localDescription.sdp });
      log(`got offer from ${nameOf(from)}, sent answer`);
      break;
    }
    case "answer": {
      const peer = peers.get(from);
      if (!peer || peer.sid !== data.sid) return;
      await peer.pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
      await flushCandidates(peer);
      break;
    }
    case "ice": {
      const peer = peers.get(from);
      if (!peer || peer.sid !== data.sid) return;
      if (peer.pc.remoteDescription) await peer.pc.addIceCandidate(data.candidate);
      else peer.pendingCandidates.push(data.candidate);
      break;
    }
  }
}

client.on("PlayerJoined", ({ player }) => {
  if (client.room?.role === "player") attempt("offer", () => offerTo(player.id));
});

client.on("gameData", ({ from_player, data, replayed }) => {
  if (replayed || data === null || typeof data !== "object") return; // Stale while away.
  if (typeof data.signal === "string") {
    attempt("signaling", () => onSignal(from_player, data));
  } else receive(from_player, data, true);
});

function receive(from, message, relayed) {
  if (typeof message.chat === "string") chatLine(nameOf(from), message.chat, relayed);
  else if (message.g === "pos") onPosition(from, message);
  else if (message.g === "state") onState(from, message);
}

ui.chatForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.chatInput.value.trim();
  const others = otherPlayers();
  if (!text || others.length === 0) return;
  for (const id of others) sendToPeer(id, { chat: text });
  chatLine("me", text, others.some((id) => !channelOpen(id)));
  ui.chatInput.value = "";
});

// ---------------------------------------------------------------------------------------------
// The pond: each player steers a fish; the authority holder runs rounds (clock, food, scores)
// and broadcasts the state through the relay, which also reaches spectators.

const game = {
  /** id → { x, y, at (ms of the last direct update) } */
  players: {},
  food: { x: WORLD.w / 2, y: WORLD.h / 2 },
  scores: {},
  round: { id: 0, running: false, remainingMs: 0, winner: null },
  /** Authority only: when the running round ends (performance.now() ms). */
  endsAt: 0,
  /** Last state from the authority and when it arrived. */
  stateAt: 0,
  self: { x: 0, y: 0, placed: false },
  keys: new Set(),
  target: null,
};

function resetGame() {
  game.players = {};
  game.scores = {};
  game.round = { id: 0, running: false, remainingMs: 0, winner: null };
  game.self.placed = false;
  ui.scores.textContent = "Arrow keys / WASD, or tap where to swim. Eat the pink worms.";
}

function isAuthority() {
  const room = client.room;
  return room?.role === "player" && room.authorityPlayer === room.selfId;
}

function spawnFood() {
  game.food = { x: 20 + Math.random() * (WORLD.w - 40), y: 20 + Math.random() * (WORLD.h - 40) };
}

function startRound() {
  if (!isAuthority()) return;
  game.round = { id: game.round.id + 1, running: true, remainingMs: ROUND_MS, winner: null };
  game.endsAt = performance.now() + ROUND_MS;
  game.scores = Object.fromEntries(client.room.players.map((p) => [p.id, 0]));
  spawnFood();
  log(`round ${game.round.id} started`);
  broadcastState();
  render(client.room);
}

/** Authority passed to us (docs/spec/EXTENSIONS.md E11 handover, or a claim): continue the round. */
function takeOverClock() {
  if (!game.round.running) return;
  const left = game.round.remainingMs - (performance.now() - game.stateAt);
  game.endsAt = performance.now() + Math.max(0, left);
  log("took over the round clock");
}

function positionsForState() {
  const room = client.room;
  const pos = {};
  for (const player of room.players) {
    const known = player.id === room.selfId ? game.self : game.players[player.id];
    if (known) pos[player.id] = [Math.round(known.x), Math.round(known.y)];
  }
  return pos;
}

function broadcastState() {
  if (!isAuthority() || client.status !== "open") return;
  trySend(() =>
    client.sendGameData({
      g: "state",
      round: game.round,
      food: { x: Math.round(game.food.x), y: Math.round(game.food.y) },
      scores: game.scores,
      pos: positionsForState(),
    })
  );
}

function onPosition(from, { x, y }) {
  if (typeof x !== "number" || typeof y !== "number") return;
  game.players[from] = { x, y, at: performance.now() };
}

function onState(from, state) {
  const room = client.room;
  if (!room || from !== room.authorityPlayer || isAuthority()) return;
  game.round = state.round;
  game.food = state.food;
  game.scores = state.scores ?? {};
  game.stateAt = performance.now();
  for (const [id, [x, y]] of Object.entries(state.pos ?? {})) {
    if (id === room.selfId) continue;
    const known = game.players[id];
    if (!known || performance.now() - known.at > DIRECT_FRESH_MS) {
      game.players[id] = { x, y, at: known?.at ?? 0 };
    }
  }
}

function placeSelf() {
  const id = client.selfId ?? "";
  let hash = 7;
  for (const char of id) hash = (hash * 33 + char.charCodeAt(0)) >>> 0;
  game.self = {
    x: 40 + (hash % (WORLD.w - 80)),
    y: 40 + ((hash >> 8) % (WORLD.h - 80)),
    placed: true,
  };
}

const KEYS = {
  ArrowLeft: [-1, 0],
  ArrowRight: [1, 0],
  ArrowUp: [0, -1],
  ArrowDown: [0, 1],
  a: [-1, 0],
  d: [1, 0],
  w: [0, -1],
  s: [0, 1],
};

addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || !(event.key in KEYS)) return;
  game.keys.add(event.key);
  game.target = null;
  event.preventDefault();
});
addEventListener("keyup", (event) => game.keys.delete(event.key));
addEventListener("blur", () => game.keys.clear());

function pointerTarget(event) {
  const box = ui.canvas.getBoundingClientRect();
  game.target = {
    x: ((event.clientX - box.left) / box.width) * WORLD.w,
    y: ((event.clientY - box.top) / box.height) * WORLD.h,
  };
}
ui.canvas.addEventListener("pointerdown", (event) => {
  pointerTarget(event);
  ui.canvas.setPointerCapture(event.pointerId);
});
ui.canvas.addEventListener("pointermove", (event) => {
  if (event.buttons) pointerTarget(event);
});

function step(dt) {
  const room = client.room;
  if (room?.role !== "player") return;
  if (!game.self.placed) placeSelf();
  let dx = 0;
  let dy = 0;
  for (const key of game.keys) {
    dx += KEYS[key][0];
    dy += KEYS[key][1];
  }
  if (game.target) {
    dx = game.target.x - game.self.x;
    dy = game.target.y - game.self.y;
    if (Math.hypot(dx, dy) < 3) game.target = null;
  }
  const length = Math.hypot(dx, dy);
  if (length > 0) {
    const move = Math.min(SPEED * dt, game.target ? length : Infinity);
    game.self.x = Math.min(WORLD.w - 8, Math.max(8, game.self.x + (dx / length) * move));
    game.self.y = Math.min(WORLD.h - 8, Math.max(8, game.self.y + (dy / length) * move));
  }
  if (isAuthority() && game.round.running) {
    game.round.remainingMs = Math.max(0, game.endsAt - performance.now());
    const everyone = { ...game.players, [room.selfId]: game.self };
    for (const [id, fish] of Object.entries(everyone)) {
      if (Math.hypot(fish.x - game.food.x, fish.y - game.food.y) < EAT_DISTANCE) {
        game.scores[id] = (game.scores[id] ?? 0) + 1;
        spawnFood();
      }
    }
    if (game.round.remainingMs === 0) {
      const best = Object.entries(game.scores).sort((a, b) => b[1] - a[1])[0];
      game.round = { ...game.round, running: false, winner: best ? best[0] : null };
      log(`round ${game.round.id} over`);
      broadcastState();
      render(room);
    }
  }
}

function clockText() {
  const room = client.room;
  const round = game.round;
  if (!room) return ["idle", "—"];
  if (!round.running) {
    if (round.id === 0) return ["idle", "not started"];
    const winner = round.winner ? nameOf(round.winner) : "nobody";
    return ["over", `over — ${winner} wins`];
  }
  let left = round.remainingMs;
  if (!isAuthority()) {
    if (room.dropped.some((d) => d.player_id === room.authorityPlayer)) {
      return ["paused", "paused: the authority holder dropped"];
    }
    if (room.authorityPlayer === null) return ["paused", "paused: nobody holds authority"];
    left -= performance.now() - game.stateAt;
  }
  return ["running", `${Math.max(0, Math.ceil(left / 1000))} s`];
}

function draw() {
  const ctx = ui.canvas.getContext("2d");
  ctx.clearRect(0, 0, WORLD.w, WORLD.h);
  const room = client.room;
  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "center";
  if (!room) {
    ctx.fillStyle = "#cfe8f3";
    ctx.fillText("Create or join a room to swim.", WORLD.w / 2, WORLD.h / 2);
    return;
  }
  if (game.round.running) {
    ctx.strokeStyle = "#ff8fab";
    ctx.lineWidth = 4;
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(game.food.x - 7, game.food.y);
    ctx.quadraticCurveTo(game.food.x - 3, game.food.y - 6, game.food.x, game.food.y);
    ctx.quadraticCurveTo(game.food.x + 3, game.food.y + 6, game.food.x + 7, game.food.y);
    ctx.stroke();
  }
  for (const player of room.players) {
    const self = player.id === room.selfId;
    const fish = self ? game.self : game.players[player.id];
    if (!fish || (self && !game.self.placed)) continue;
    const dropped = room.dropped.some((d) => d.player_id === player.id);
    ctx.globalAlpha = dropped ? 0.35 : 1;
    ctx.fillStyle = colorOf(player.id);
    ctx.beginPath();
    ctx.ellipse(fish.x, fish.y, 11, 7, 0, 0, Math.PI * 2);
    ctx.fill();
    ctx.beginPath();
    ctx.moveTo(fish.x - 9, fish.y);
    ctx.lineTo(fish.x - 17, fish.y - 6);
    ctx.lineTo(fish.x - 17, fish.y + 6);
    ctx.fill();
    if (self) {
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 2;
      ctx.stroke();
    }
    ctx.fillStyle = "#fff";
    const labelY = fish.y < 24 ? fish.y + 22 : fish.y - 12; // Below the fish near the top.
    ctx.fillText(`${player.name} ${game.scores[player.id] ?? ""}`.trim(), fish.x, labelY);
    ctx.globalAlpha = 1;
  }
}

let last = performance.now();
function frame(now) {
  const dt = Math.min(0.1, (now - last) / 1000);
  last = now;
  step(dt);
  draw();
  const [state, text] = clockText();
  if (ui.clock.textContent !== text) setState(ui.clock, state, text);
  const scores = Object.entries(game.scores)
    .filter(([id]) => client.room?.players.some((p) => p.id === id))
    .map(([id, score]) => `${nameOf(id)} ${score}`).join(" · ");
  if (scores && ui.scores.textContent !== `Scores: ${scores}`) {
    ui.scores.textContent = `Scores: ${scores}`;
  }
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

// Own position to every peer (DataChannel, else relay); the authority's state to everyone.
let lastSent = "";
let lastSentAt = 0;
setInterval(() => {
  if (client.room?.role !== "player" || client.status !== "open" || !game.self.placed) return;
  const position = { g: "pos", x: Math.round(game.self.x), y: Math.round(game.self.y) };
  const text = JSON.stringify(position);
  if (text === lastSent && performance.now() - lastSentAt < 1000) return;
  lastSent = text;
  lastSentAt = performance.now();
  for (const id of otherPlayers()) sendToPeer(id, position);
}, 1000 / POSITION_HZ);
setInterval(broadcastState, 1000 / STATE_HZ);

// ---------------------------------------------------------------------------------------------
// Start: connect, take back a stored seat (page reload), else offer the invitation.

/** For the browser test and for poking around in the console. */
globalThis.signalFish = client;
globalThis.demo = {
  client,
  game,
  view: () => ({
    world: { ...WORLD },
    self: { x: Math.round(game.self.x), y: Math.round(game.self.y) },
    players: Object.fromEntries(
      Object.entries(game.players).map((
        [id, p],
      ) => [id, { x: Math.round(p.x), y: Math.round(p.y) }]),
    ),
    round: { ...game.round },
    scores: { ...game.scores },
    transport: Object.fromEntries(otherPlayers().map((id) => [id, transportTo(id)])),
  }),
};

async function start() {
  render(null);
  if (INVITE_CODE) {
    ui.code.value = INVITE_CODE;
    ui.invite.textContent = `You were invited to room ${INVITE_CODE}: pick a name and Join.`;
  }
  try {
    await client.open();
  } catch (error) {
    showConnection("lost", "lost — server unreachable");
    ui.retry.hidden = false;
    showError(`Cannot reach the server: ${error.message}`);
    return;
  }
  const stored = await client.storedSession();
  if (!stored) return;
  ui.invite.textContent = `Taking your place in room ${stored.room_code} back…`;
  try {
    const resumed = await client.resume();
    ui.roomNotice.textContent = resumed?.role === "spectator"
      ? `Resumed: watching room ${stored.room_code} again.`
      : `Resumed after the reload: your seat in room ${stored.room_code} was kept.`;
    log(`resumed ${resumed?.role} in ${stored.room_code}`); // "reconnected" greeted the peers.
  } catch (error) {
    ui.invite.textContent = "";
    ui.code.value = stored.room_code;
    showError(`Could not take your place in room ${stored.room_code} back: ${error.message}`);
  }
}

start();
