// The camera list: one card per camera playing its H.264 encode (progressive fMP4 from
// /mp4/{camera}, or LL-HLS from /hls/{camera}/index.m3u8 where the browser plays HLS
// itself) in a <video>, falling back to the MJPEG stream in an <img>, with each source's
// ingest state and each rendition's figures, refreshed from /api/cameras.
// No framework, no vendored code.
"use strict";

const REFRESH_MS = 2000;
// The video must be playable by then or the card falls back to MJPEG. The gateway starts
// the encode and asks it for an IDR on a first viewer: about a second on a busy machine.
const VIDEO_START_MS = 8000;
// How often a playing video is checked against the live edge.
const CHASE_MS = 250;

// Keeping a bare <video src> near the live edge. The gateway writes one fragment per
// picture as soon as it is encoded, but the browser has no live mode for a progressive
// MP4. Chromium feeds the response to its demuxer in 32 KB reads, so `buffered.end`
// moves in steps (measured: 0.9 s of video at the encode's 300 kbit/s); when playback
// catches up with the data it stalls ("waiting") for one to three seconds and resumes
// that much later, for good, and after a stall the player keeps a deeper buffer. So the
// delay only grows, by stalls and by a late start. Jumping `currentTime` towards
// `buffered.end` does not work: the response has no length and no byte ranges, so
// `seekable` is [0, 0] and a seek lands at the start (observed in Chromium 156). Nor
// does a threshold on `buffered.end - currentTime` alone: right after a step that lead
// is a whole step, which is no excess. The player watches the smallest lead over the
// last LEAD_WINDOW_MS (several steps): the slack playback never used. While it exceeds
// LEAD_EXCESS_S the video plays CATCH_UP_RATE fast (the browser keeps the pitch), back
// to normal as soon as it drops under LEAD_ENOUGH_S; the margin is wide because a
// stall costs far more than the tenth of a second per second the nudge wins back. A
// viewer so far behind that catching up would take minutes (a tab brought back from
// the background) reconnects instead: the gateway starts every viewer on a fresh
// keyframe.
const LEAD_WINDOW_MS = 3000;
const LEAD_EXCESS_S = 1.0;
const LEAD_ENOUGH_S = 0.6;
const CATCH_UP_RATE = 1.1;
const RECONNECT_LEAD_S = 5;
// At most one reconnect (after a far lag or the end of the stream) per this long; a
// stream that ends again within it falls back to MJPEG.
const RECONNECT_MIN_MS = 15000;
// A card that fell back to MJPEG after its video had played tries the video again while
// the camera is live, this long after the failure, doubling per failure up to the max.
const RETRY_FIRST_MS = 5000;
const RETRY_MAX_MS = 120000;
// A <video> that plays HLS itself says "maybe" to this type: Safari's, and recent
// Chromium's (156 does); older Chromium says "" and would need hls.js, which the page does
// not ship. There the card offers HLS beside the fMP4 stream, which stays the default; the
// viewer's choice is remembered per browser, and a failed fMP4 stream tries HLS.
const HLS_TYPE = "application/vnd.apple.mpegurl";
const SOURCE_KEY = "gateway.source";

const cards = new Map();

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const num = (x, digits = 1) => (typeof x === "number" ? x.toFixed(digits) : "–");

// Plays a camera's /mp4 stream, or its MJPEG stream when the video fails.
class Player {
  constructor(card, camera) {
    const name = encodeURIComponent(camera.name);
    this.mp4 = `/mp4/${name}`;
    this.hls = `/hls/${name}/index.m3u8`;
    this.mjpeg = camera.streams.mjpeg ? `/axis-cgi/mjpg/video.cgi?camera=${name}` : null;
    this.hasAudio = Boolean(camera.streams.audio);
    this.video = card.querySelector("video");
    this.img = card.querySelector("img");
    this.muteButton = card.querySelector(".mute");
    this.retryButton = card.querySelector(".retry");
    this.mode = card.querySelector(".mode");
    this.source = card.querySelector(".source");
    this.source.hidden = this.video.canPlayType(HLS_TYPE) === "";
    this.state = "idle";
    this.startTimer = null;
    this.reconnectedAt = -Infinity;
    this.leads = [];  // [time, buffered lead] samples over the last LEAD_WINDOW_MS
    this.played = false;
    this.failedAt = 0;
    this.retryDelay = RETRY_FIRST_MS;
    this.img.alt = `live view of ${camera.name}`;
    this.video.setAttribute("aria-label", `live video of ${camera.name}`);
    const video = this.video;
    video.addEventListener("canplay", () => this.onCanPlay());
    video.addEventListener("playing", () => this.onPlaying());
    video.addEventListener("error", () => this.onError());
    video.addEventListener("ended", () => this.onEnded());
    video.addEventListener("volumechange", () => this.showMuted());
    this.muteButton.addEventListener("click", () => { video.muted = !video.muted; });
    this.retryButton.addEventListener("click", () => this.start(this.preferred()));
    this.source.addEventListener("change", () => {
      remember(this.source.value);
      this.start();
    });
    this.showMuted();
    this.start(this.preferred());
  }

  // The source a (re)start begins with: the viewer's choice, else the fMP4 stream.
  preferred() {
    return !this.source.hidden && remembered() === "hls" ? "hls" : "mp4";
  }

  start(source = this.source.value) {
    clearTimeout(this.startTimer);
    this.source.value = source;
    this.state = "starting";
    this.img.removeAttribute("src");
    this.img.hidden = true;
    this.video.hidden = false;
    this.muteButton.hidden = !this.hasAudio;
    this.retryButton.hidden = true;
    this.mode.textContent = "starting video…";
    this.mode.title = "";
    this.leads = [];
    this.video.playbackRate = 1;
    this.video.src = this.usesHls() ? this.hls : this.mp4;
    this.startTimer = setTimeout(
      () => this.fallBack(`no picture within ${VIDEO_START_MS / 1000} s`), VIDEO_START_MS);
  }

  usesHls() {
    return this.source.value === "hls";
  }

  onCanPlay() {
    clearTimeout(this.startTimer);
    // `autoplay` waits for HAVE_ENOUGH_DATA, which a live stream may never report.
    if (!this.video.paused || this.state === "mjpeg") return;
    this.video.play().catch((err) => {
      if (err.name === "AbortError" || this.state === "mjpeg") return;  // we stopped it
      if (err.name === "NotAllowedError" && !this.video.muted) {
        this.video.muted = true;  // sound needs a gesture the page has not had yet
        this.onCanPlay();
      } else {
        this.fallBack(err.message);
      }
    });
  }

  onPlaying() {
    this.state = "playing";
    this.played = true;
    this.retryDelay = RETRY_FIRST_MS;
  }

  // Tries the video again if it played before, failed a while ago and the camera is live.
  retry(live) {
    if (this.state !== "mjpeg" || !this.played || !live) return;
    if (performance.now() - this.failedAt < this.retryDelay) return;
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    this.start(this.preferred());
  }

  // Reconnects unless it did so lately; returns whether it did.
  reconnect() {
    if (performance.now() - this.reconnectedAt < RECONNECT_MIN_MS) return false;
    this.reconnectedAt = performance.now();
    this.start();
    return true;
  }

  onError() {
    // A video that played once gets one more go (the gateway may have restarted).
    if (this.state === "playing" && this.reconnect()) return;
    this.fallBack(mediaError(this.video.error));
  }

  onEnded() {
    // The gateway closed the stream (a restart, or the camera's encode stopped).
    if (this.state !== "mjpeg" && !this.reconnect()) this.fallBack("the stream ended");
  }

  fallBack(reason) {
    if (this.state === "mjpeg") return;
    if (!this.usesHls() && !this.source.hidden) {
      // The browser plays HLS itself: try that before MJPEG (Safari asks a <video src> for
      // byte ranges, which a live progressive stream cannot serve).
      this.start("hls");
      this.mode.title = `fMP4 failed: ${reason}`;
      return;
    }
    clearTimeout(this.startTimer);
    this.state = "mjpeg";
    this.failedAt = performance.now();
    // Dropping the source closes the /mp4 connection (and its reader in the gateway).
    this.video.removeAttribute("src");
    this.video.load();
    this.video.hidden = true;
    this.muteButton.hidden = true;
    this.retryButton.hidden = false;
    if (this.mjpeg) {
      this.img.src = this.mjpeg;
      this.img.hidden = false;
    }
    this.mode.textContent = `${this.mjpeg ? "MJPEG — " : ""}video failed: ${reason}`;
    this.mode.title = this.mode.textContent;
  }

  showMuted() {
    this.muteButton.textContent = this.video.muted ? "Unmute" : "Mute";
  }

  chase(now) {
    if (this.state !== "playing") return;
    const video = this.video;
    const buffered = video.buffered;
    if (!buffered.length) return;
    const lead = buffered.end(buffered.length - 1) - video.currentTime;
    if (this.usesHls()) {
      // The browser's HLS player holds its own distance to the live edge (the playlist's
      // PART-HOLD-BACK): nothing to chase.
      this.mode.textContent = `LL-HLS video · ${lead.toFixed(1)} s buffered`;
      return;
    }
    this.leads.push([now, lead]);
    while (now - this.leads[0][0] > LEAD_WINDOW_MS) this.leads.shift();
    // Judge only a full window: right after a (re)start there is no history yet.
    if (now - this.leads[0][0] >= LEAD_WINDOW_MS - CHASE_MS) {
      const slack = Math.min(...this.leads.map(([, l]) => l));
      if (slack > RECONNECT_LEAD_S && this.reconnect()) return;
      if (slack > LEAD_EXCESS_S) video.playbackRate = CATCH_UP_RATE;
      else if (slack < LEAD_ENOUGH_S) video.playbackRate = 1;
    }
    const pace = video.playbackRate > 1 ? " · catching up" : "";
    this.mode.textContent = `H.264 video · ${lead.toFixed(1)} s buffered${pace}`;
  }
}

// The viewer's source choice ("mp4" or "hls"), kept where the browser allows storage.
function remembered() {
  try {
    return localStorage.getItem(SOURCE_KEY);
  } catch {
    return null;
  }
}

function remember(source) {
  try {
    localStorage.setItem(SOURCE_KEY, source);
  } catch {
    // Storage refused (a private window): the choice lasts as long as the page.
  }
}

function mediaError(error) {
  if (!error) return "unknown error";
  const names = { 1: "aborted", 2: "network error", 3: "cannot decode", 4: "not supported" };
  return error.message || names[error.code] || `error ${error.code}`;
}

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
