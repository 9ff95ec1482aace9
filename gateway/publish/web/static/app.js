// The camera list: one card per camera, its player (player.js) and each source's ingest
// state and each rendition's figures, refreshed from /api/cameras.
// No framework, no vendored code.
"use strict";

const REFRESH_MS = 2000;

const cards = new Map();

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const num = (x, digits = 1) => (typeof x === "number" ? x.toFixed(digits) : "–");

function streamLine(kind, s) {
  const unit = kind === "audio" ? "parts/s" : "fps";
  const fps = s.state === "live" ? `${s.fps_in.toFixed(1)} ${unit}` : s.state;
  const extra = [s.resolution, s.codec];
  if (typeof s.prebuffer_seconds === "number") {
    extra.push(`${s.prebuffer_seconds.toFixed(1)} s prebuffer`);
  }
  if (typeof s.level_dbfs === "number") extra.push(`level ${s.level_dbfs.toFixed(1)} dBFS`);
  const text = extra.filter(Boolean).join(", ");
  return [kind, text ? `${fps} · ${text}` : fps];
}

function audioFigures(r) {
  return [
    r.codec,
    typeof r.sample_rate === "number" && `${r.sample_rate / 1000} kHz`,
    `${num(r.packets_per_s)} packets/s`,
    `${r.skipped} skipped`,
    `${r.failed} failed`,
  ];
}

// What each rendition kind shows after its name, state and consumers.
const RENDITION_FIGURES = {
  h264: (r) => [
    r.codec,
    `${num(r.fps_in)} → ${num(r.fps_out)} fps`,
    `${num(r.encode_ms_mean)} ms/frame`,
    `${r.skipped} skipped`,
    `${r.failed} failed`,
    `keyframes ${r.keyframes_requested} requested, ${r.keyframes_produced} produced`,
  ],
  jpeg: (r) => [
    `${r.frames_out} frames`,
    `${num(r.encode_ms_mean)} ms/frame`,
    `${r.frames_skipped} skipped`,
    `${r.frames_failed} failed`,
  ],
  aac: audioFigures,
  opus: audioFigures,
  pcm: (r) => [
    r.decoder_codec,
    typeof r.level_dbfs === "number" && `level ${num(r.level_dbfs)} dBFS`,
  ],
};

function renditionLabel(r) {
  // An H.264 size cap comes as "(w, h)"; the encode's actual size as "wxh".
  const cap = /^\((\d+), (\d+)\)$/.exec(r.params || "");
  const params = cap ? `max ${cap[1]}x${cap[2]}` : r.params;
  return [r.kind, params, r.size].filter(Boolean).join(" ");
}

function renditionItem(r) {
  const li = document.createElement("li");
  li.dataset.rendition = r.kind;
  if (r.params) li.dataset.params = r.params;
  const head = document.createElement("div");
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = renditionLabel(r);
  const state = document.createElement("span");
  state.className = `badge ${r.state}`;
  state.textContent = r.state;
  const consumers = document.createElement("span");
  consumers.className = "consumers";
  consumers.textContent = plural(r.consumers, "consumer");
  head.append(label, " ", state, " ", consumers);
  const figures = document.createElement("div");
  figures.className = "figures";
  const describe = RENDITION_FIGURES[r.kind] || (() => []);
  figures.textContent = describe(r).filter(Boolean).join(" · ");
  li.append(head, figures);
  if (r.last_error) {
    const error = document.createElement("div");
    error.className = "error";
    error.textContent = r.last_error;
    li.append(error);
  }
  return li;
}

function cardFor(camera) {
  let card = cards.get(camera.name);
  if (card) return card;
  card = document.getElementById("camera-card").content.firstElementChild.cloneNode(true);
  const name = encodeURIComponent(camera.name);
  card.dataset.camera = camera.name;
  card.querySelector(".name").textContent = camera.name;
  const links = card.querySelector(".links");
  const endpoints = [["MP4", `/mp4/${name}`], ["HLS", `/hls/${name}/index.m3u8`]];
  if (camera.streams.mjpeg) endpoints.push(["MJPEG", `/axis-cgi/mjpg/video.cgi?camera=${name}`]);
  endpoints.push(["snapshot", `/axis-cgi/jpg/image.cgi?camera=${name}`]);
  if (camera.streams.mpeg2) endpoints.push(["MPEG-2", `/axis-cgi/mpeg2/video.cgi?camera=${name}`]);
  if (camera.streams.audio) endpoints.push(["audio", `/axis-cgi/audio/receive.cgi?camera=${name}`]);
  endpoints.push(["state", `/api/cameras/${name}`]);
  for (const [label, href] of endpoints) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = label;
    links.append(a, " ");
  }
  document.getElementById("cameras").append(card);
  card.player = new Player(card, camera);
  cards.set(camera.name, card);
  return card;
}

function render(camera) {
  const card = cardFor(camera);
  const mjpeg = camera.streams.mjpeg || Object.values(camera.streams)[0];
  const badge = card.querySelector(".state");
  badge.textContent = mjpeg ? mjpeg.state : "no stream";
  badge.className = `badge state ${mjpeg ? mjpeg.state : ""}`;
  const dl = card.querySelector(".streams");
  dl.replaceChildren();
  for (const [kind, s] of Object.entries(camera.streams)) {
    const [dt, dd] = streamLine(kind, s).map((text, i) => {
      const el = document.createElement(i ? "dd" : "dt");
      el.textContent = text;
      return el;
    });
    dd.dataset.stream = kind;
    dl.append(dt, dd);
  }
  const renditions = camera.renditions || [];
  card.querySelector(".renditions").replaceChildren(...renditions.map(renditionItem));
  card.querySelector(".renditions-title").hidden = renditions.length === 0;
  const kinds = [...new Set(camera.clients.map((c) => c.kind))].join(", ");
  const n = camera.clients.length;
  card.querySelector(".clients").textContent = plural(n, "client") + (n ? ` (${kinds})` : "");
  card.player.retry(Object.values(camera.streams).some((s) => s.state === "live"));
  const errors = Object.entries(camera.streams)
    .filter(([, s]) => s.last_error).map(([kind, s]) => `${kind}: ${s.last_error}`);
  const error = card.querySelector(".error");
  error.hidden = errors.length === 0;
  error.textContent = errors.join("; ");
}

async function refresh() {
  const summary = document.getElementById("summary");
  try {
    const response = await fetch("/api/cameras", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const { cameras } = await response.json();
    cameras.forEach(render);
    const live = cameras.filter((c) => Object.values(c.streams).some((s) => s.state === "live"));
    summary.textContent = `${plural(cameras.length, "camera")}, ${live.length} live`;
  } catch (err) {
    summary.textContent = `cannot reach the gateway: ${err.message}`;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
setInterval(() => cards.forEach((card) => card.player.chase(performance.now())), CHASE_MS);

// A closing page ends its WebRTC sessions at the gateway (a keepalive DELETE) instead of
// leaving them to the consent timeout; a page restored from the back/forward cache restarts.
window.addEventListener("pagehide", () => cards.forEach((card) => card.player.stop()));
window.addEventListener("pageshow", (event) => {
  if (event.persisted) cards.forEach((card) => card.player.start(card.player.preferred()));
});
