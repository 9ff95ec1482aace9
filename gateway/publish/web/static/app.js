// The camera list: one card per camera with its live MJPEG stream and ingest state,
// refreshed from /api/cameras. No framework, no vendored code.
"use strict";

const REFRESH_MS = 2000;
const cards = new Map();

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

function cardFor(camera) {
  let card = cards.get(camera.name);
  if (card) return card;
  card = document.getElementById("camera-card").content.firstElementChild.cloneNode(true);
  const name = encodeURIComponent(camera.name);
  card.dataset.camera = camera.name;
  card.querySelector(".name").textContent = camera.name;
  const img = card.querySelector("img");
  img.alt = `live view of ${camera.name}`;
  if (camera.streams.mjpeg) img.src = `/axis-cgi/mjpg/video.cgi?camera=${name}`;
  const links = card.querySelector(".links");
  const endpoints = [["snapshot", `/axis-cgi/jpg/image.cgi?camera=${name}`]];
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
  const n = camera.clients.length;
  card.querySelector(".clients").textContent = `${n} client${n === 1 ? "" : "s"}`;
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
    summary.textContent = `${cameras.length} camera${cameras.length === 1 ? "" : "s"}, ${live.length} live`;
  } catch (err) {
    summary.textContent = `cannot reach the gateway: ${err.message}`;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
