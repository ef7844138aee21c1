// The demo page's script (served at /demo.js, no build step): lobby UI on top of the Signal Fish
// client (/client.js) and a WebRTC DataChannel chat whose offer, answer and ICE candidates travel
// as targeted GameData (EXTENSIONS.md E4). Chat text only ever crosses the DataChannel.
import { SignalFishClient } from "/client.js";

const GAME_NAME = "p2p-chat-demo";
/** Loopback and LAN peers need no STUN server: host candidates suffice. */
const RTC_CONFIG = { iceServers: [] };

const $ = (id) => document.getElementById(id);
const ui = {
  name: $("name-input"),
  code: $("code-input"),
  create: $("create"),
  join: $("join"),
  leave: $("leave"),
  connection: $("connection"),
  roomCode: $("room-code"),
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
ui.name.value = `Player-${Math.random().toString(36).slice(2, 6)}`;

function log(text) {
  const line = document.createElement("div");
  line.textContent = `${new Date().toISOString().slice(11, 23)} ${text}`;
  ui.log.append(line);
  ui.log.scrollTop = ui.log.scrollHeight;
}

function chatLine(who, text) {
  const line = document.createElement("div");
  line.className = "chat-line";
  line.textContent = `${who}: ${text}`;
  ui.chatLog.append(line);
  ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
}

function setState(element, state, text = state) {
  element.dataset.state = state;
  element.textContent = text;
}

const client = new SignalFishClient(location.origin);
// Exposed for the browser test and for poking around in the console.
globalThis.signalFish = client;

// ---------------------------------------------------------------------------------------------
// Lobby view

function render(room) {
  const inRoom = room !== null && room !== undefined;
  ui.create.disabled = inRoom;
  ui.join.disabled = inRoom;
  ui.leave.disabled = !inRoom;
  ui.roomCode.textContent = inRoom ? room.roomCode : "—";
  ui.lobbyState.textContent = inRoom ? room.lobbyState : "—";
  ui.spectators.textContent = inRoom ? String(room.spectators.length) : "0";
  const holder = inRoom ? room.players.find((p) => p.id === room.authorityPlayer) : undefined;
  ui.authority.textContent = holder ? holder.name : "nobody";
  ui.players.replaceChildren(
    ...(inRoom ? room.players : []).map((player) => {
      const item = document.createElement("li");
      item.dataset.id = player.id;
      item.className = player.id === room.selfId ? "self" : "";
      const marks = [
        player.is_ready ? "✔ ready" : "not ready",
        player.is_authority ? "★ authority" : "",
        player.id === room.selfId ? "(you)" : "",
      ].filter(Boolean).join(" · ");
      item.textContent = `${player.name} — ${marks}`;
      return item;
    }),
  );
  const me = inRoom ? room.players.find((p) => p.id === room.selfId) : undefined;
  ui.ready.disabled = !me;
  ui.ready.textContent = me?.is_ready ? "Not ready" : "Ready";
  ui.authorityButton.disabled = !me || room.supportsAuthority === false;
  ui.authorityButton.textContent = me?.is_authority ? "Release authority" : "Claim authority";
}

client.on("room", render);
client.on("open", () => setState(ui.connection, "open", "connected"));
client.on("close", ({ code, reconnecting }) => {
  setState(ui.connection, "closed", reconnecting ? "reconnecting…" : `closed (${code})`);
});
client.on("reconnected", ({ missed_events }) => {
  setState(ui.connection, "open", "connected");
  log(`reconnected; ${missed_events.length} missed message(s) replayed`);
});
client.on("error", (error) => log(`server error ${error.code}: ${error.message}`));
client.on("PlayerJoined", ({ player }) => log(`${player.name} joined`));
client.on("PlayerLeft", ({ player_id }) => log(`player ${player_id.slice(0, 8)} left`));
client.on("LobbyStateChanged", ({ lobby_state }) => log(`lobby is ${lobby_state}`));
client.on("GameStarting", () => log("everyone is ready: GameStarting"));
client.on("AuthorityChanged", ({ authority_player }) => {
  log(`authority: ${authority_player ? nameOf(authority_player) : "nobody"}`);
});

async function attempt(what, action) {
  try {
    await action();
  } catch (error) {
    log(`${what} failed: ${error.code ?? error.name}: ${error.message}`);
  }
}

ui.create.addEventListener("click", () =>
  attempt("create", async () => {
    const room = await client.createRoom({
      game_name: GAME_NAME,
      player_name: ui.name.value.trim(),
      max_players: 2,
    });
    log(`created room ${room.room_code}; share the code`);
  }));

ui.join.addEventListener("click", () =>
  attempt("join", async () => {
    const room = await client.joinRoom({
      game_name: GAME_NAME,
      room_code: ui.code.value.trim(),
      player_name: ui.name.value.trim(),
      max_players: 2,
    });
    log(`joined room ${room.room_code}`);
  }));

ui.leave.addEventListener("click", () =>
  attempt("leave", async () => {
    closePeer();
    await client.leave();
    log("left the room");
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

// ---------------------------------------------------------------------------------------------
// WebRTC: the player already in the room offers to each newcomer; signaling is targeted GameData.

let peer; // { id, pc, channel, pendingCandidates }

function closePeer() {
  if (!peer) return;
  peer.channel?.close();
  peer.pc.close();
  peer = undefined;
  setState(ui.p2p, "idle");
  ui.chatInput.disabled = true;
  ui.chatSend.disabled = true;
}

function newPeer(id) {
  closePeer();
  const pc = new RTCPeerConnection(RTC_CONFIG);
  peer = { id, pc, channel: undefined, pendingCandidates: [] };
  pc.onicecandidate = ({ candidate }) => {
    if (candidate) client.sendTo(id, { signal: "ice", candidate: candidate.toJSON() });
  };
  pc.onconnectionstatechange = () => log(`peer connection ${pc.connectionState}`);
  pc.ondatachannel = ({ channel }) => useChannel(channel);
  setState(ui.p2p, "connecting", "connecting…");
  return peer;
}

function useChannel(channel) {
  peer.channel = channel;
  channel.onopen = () => {
    setState(ui.p2p, "open");
    ui.chatInput.disabled = false;
    ui.chatSend.disabled = false;
    log("DataChannel open: chat is now peer to peer");
  };
  channel.onclose = () => {
    if (peer?.channel === channel) setState(ui.p2p, "closed");
    ui.chatInput.disabled = true;
    ui.chatSend.disabled = true;
  };
  channel.onmessage = ({ data }) => chatLine(nameOf(peer?.id), String(data));
}

function nameOf(id) {
  return client.room?.players.find((p) => p.id === id)?.name ?? "peer";
}

async function flushCandidates() {
  for (const candidate of peer.pendingCandidates.splice(0)) {
    await peer.pc.addIceCandidate(candidate);
  }
}

client.on("PlayerJoined", ({ player }) =>
  attempt("offer", async () => {
    const { pc } = newPeer(player.id);
    useChannel(pc.createDataChannel("chat"));
    await pc.setLocalDescription(await pc.createOffer());
    client.sendTo(player.id, { signal: "offer", sdp: pc.localDescription.sdp });
    log(`sent offer to ${player.name}`);
  }));

client.on("PlayerLeft", ({ player_id }) => {
  if (peer?.id === player_id) closePeer();
});

client.on("gameData", ({ from_player, data }) =>
  attempt("signaling", async () => {
    switch (data?.signal) {
      case "offer": {
        const { pc } = newPeer(from_player);
        await pc.setRemoteDescription({ type: "offer", sdp: data.sdp });
        await flushCandidates();
        await pc.setLocalDescription(await pc.createAnswer());
        client.sendTo(from_player, { signal: "answer", sdp: pc.localDescription.sdp });
        log(`got offer from ${nameOf(from_player)}, sent answer`);
        break;
      }
      case "answer":
        if (peer?.id !== from_player) return;
        await peer.pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
        await flushCandidates();
        log(`got answer from ${nameOf(from_player)}`);
        break;
      case "ice":
        if (peer?.id !== from_player) return;
        if (peer.pc.remoteDescription) await peer.pc.addIceCandidate(data.candidate);
        else peer.pendingCandidates.push(data.candidate);
        break;
    }
  }));

ui.chatForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.chatInput.value.trim();
  if (!text || peer?.channel?.readyState !== "open") return;
  peer.channel.send(text);
  chatLine("me", text);
  ui.chatInput.value = "";
});

render(null);
attempt("connect", () => client.open());
