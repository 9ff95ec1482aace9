// The camera page's players: each card's <video> plays the camera's H.264 encode over
// WebRTC (WHEP, /whep/{camera}, whep.js) by default, else as progressive fMP4 from
// /mp4/{camera} or LL-HLS from /hls/{camera}/index.m3u8 where the browser plays HLS
// itself, falling back to the MJPEG stream in an <img>; an overlay on the picture names
// the transport and estimates the delay.
// No framework, no vendored code.
"use strict";

// The video must be playable by then or the card falls back to MJPEG. The gateway starts
// the encode and asks it for an IDR on a first viewer: about a second on a busy machine.
const VIDEO_START_MS = 8000;
// How often a playing video is checked against the live edge.
const CHASE_MS = 250;

// WebRTC. The first picture must follow the answer within WEBRTC_PICTURE_MS (ICE, DTLS and
// the encode's first IDR, a fraction of that on loopback) or the card falls back to fMP4;
// so does a first session whose offer the gateway refuses or whose connection fails. A
// session that played and then fails, or stays "disconnected" (consent checks unanswered,
// which may recover) for DISCONNECTED_GRACE_MS, is replaced by a new one after a backoff
// doubling from RTC_BACKOFF_FIRST_MS; after RTC_RECONNECTS in a row without a picture the
// card falls back to fMP4. The stats that estimate the delay are read every STATS_MS; a
// session whose decoded-picture count has not moved for STALL_MS shows no estimate (the
// connection state says whether it is lost; a stalled camera is not).
const WEBRTC_PICTURE_MS = 3000;
const DISCONNECTED_GRACE_MS = 2000;
const RTC_BACKOFF_FIRST_MS = 1000;
const RTC_RECONNECTS = 4;
const STATS_MS = 1000;
const STALL_MS = 2000;

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
// not ship. There the card offers HLS beside WebRTC and the fMP4 stream; the viewer's
// choice is remembered per browser, and a failed fMP4 stream tries HLS.
const HLS_TYPE = "application/vnd.apple.mpegurl";
const SOURCE_KEY = "gateway.source";

// The video transports, best first: a failed one gives way to the next the card offers,
// the last to the MJPEG <img>.
const TRANSPORTS = ["webrtc", "mp4", "hls"];
const LABELS = { webrtc: "WebRTC", mp4: "fMP4", hls: "HLS", mjpeg: "MJPEG" };
// What the overlay's delay figure counts, per transport: it is an estimate, and says so.
const ESTIMATES = {
  webrtc: "Estimated delay at this end: the video jitter buffer's mean delay plus half the"
    + " network round trip (getStats); the camera, the encode and the decoder are not counted.",
  mp4: "Estimated delay: the video buffered ahead of playback (buffered.end − currentTime);"
    + " the camera, the encode and the network are not counted.",
};
ESTIMATES.hls = ESTIMATES.mp4;

const ms = (seconds) => `${Math.round(seconds * 1000)} ms`;

// Plays a camera over WebRTC, fMP4 or HLS, or its MJPEG stream when the video fails.
class Player {
  constructor(card, camera) {
    const name = encodeURIComponent(camera.name);
    this.whep = `/whep/${name}`;
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
    this.overlay = card.querySelector(".overlay");
    this.transportLabel = this.overlay.querySelector(".transport");
    this.latencyLabel = this.overlay.querySelector(".latency");
    // Offer only what this browser plays.
    const unsupported = {
      webrtc: typeof RTCPeerConnection === "undefined",
      hls: this.video.canPlayType(HLS_TYPE) === "",
    };
    for (const option of [...this.source.options]) {
      if (unsupported[option.value]) option.remove();
    }
    this.source.hidden = this.source.options.length < 2;
    this.transport = null;  // what plays: one of TRANSPORTS, or "mjpeg"
    this.state = "idle";
    this.startTimer = null;
    this.reconnectedAt = -Infinity;
    this.leads = [];  // [time, buffered lead] samples over the last LEAD_WINDOW_MS
    this.played = false;
    this.failedAt = 0;
    this.retryDelay = RETRY_FIRST_MS;
    this.session = null;  // the WhepSession while WebRTC plays
    this.iceServers = [];  // the last answer's Link headers: for the next session
    this.rtcTimer = null;  // a reconnect's backoff, or a disconnected session's grace
    this.rtcPlayed = false;  // a WebRTC session showed a picture since the last start()
    this.rtcFailures = 0;  // sessions that failed in a row since the last picture
    this.answeredAt = 0;
    this.firstPictureAt = null;  // when the last session showed its first picture
    this.firstPictureMs = null;  // how long after its answer
    this.statsAt = -Infinity;
    this.statsBusy = false;
    this.framesDecoded = -1;  // the session's count at the last stats read
    this.freshAt = 0;  // when that count last moved
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

  offers(transport) {
    return [...this.source.options].some((option) => option.value === transport);
  }

  // The transport a (re)start begins with: the viewer's choice, else the best offered.
  preferred() {
    const choice = remembered();
    return this.offers(choice) ? choice : this.source.options[0].value;
  }

  // The transport that takes over when `transport` fails.
  next(transport) {
    return TRANSPORTS.slice(TRANSPORTS.indexOf(transport) + 1)
      .find((t) => this.offers(t)) || "mjpeg";
  }

  start(source = this.source.value) {
    this.rtcPlayed = false;
    this.rtcFailures = 0;
    this.begin(source);
  }

  begin(source) {
    this.stop();
    this.source.value = source;
    this.transport = source;
    this.state = "starting";
    this.img.removeAttribute("src");
    this.img.hidden = true;
    this.video.hidden = false;
    this.muteButton.hidden = !this.hasAudio;
    this.retryButton.hidden = true;
    this.mode.textContent = `starting ${LABELS[source]}…`;
    this.mode.title = "";
    this.showOverlay(null);
    if (source === "webrtc") {
      this.connect();
      return;
    }
    this.leads = [];
    this.video.playbackRate = 1;
    this.video.src = source === "hls" ? this.hls : this.mp4;
    this.startTimer = setTimeout(
      () => this.fallBack(`no picture within ${VIDEO_START_MS / 1000} s`), VIDEO_START_MS);
  }

  // Stops the video: ends the WebRTC session (at the gateway too) and drops the
  // <video>'s source, which closes an /mp4 or HLS connection and its reader.
  stop() {
    clearTimeout(this.startTimer);
    clearTimeout(this.rtcTimer);
    if (this.session) {
      this.session.close();
      this.session = null;
    }
    if (this.video.srcObject) this.video.srcObject = null;
    if (this.video.hasAttribute("src")) {
      this.video.removeAttribute("src");
      this.video.load();
    }
  }

  // Opens a WHEP session and plays what it receives.
  async connect() {
    const session = new WhepSession(this.whep, {
      iceServers: this.iceServers,
      onState: (state) => this.onRtcState(session, state),
    });
    this.session = session;
    let stream;
    try {
      stream = await session.start();
    } catch (err) {
      this.rtcFailed(session, err.message);
      return;
    }
    if (session !== this.session) return;
    if (session.iceServers.length) this.iceServers = session.iceServers;
    this.answeredAt = performance.now();
    this.video.srcObject = stream;
    this.startTimer = setTimeout(() => this.rtcFailed(
      session, `no picture within ${WEBRTC_PICTURE_MS / 1000} s`), WEBRTC_PICTURE_MS);
    if ("requestVideoFrameCallback" in this.video) {
      this.video.requestVideoFrameCallback(() => this.onRtcPicture(session));
    } else {
      // Without it, "resize" comes with the first picture's size.
      this.video.addEventListener("resize", () => this.onRtcPicture(session), { once: true });
    }
  }

  onRtcPicture(session) {
    if (session !== this.session) return;
    clearTimeout(this.startTimer);
    this.firstPictureAt = performance.now();
    this.firstPictureMs = this.firstPictureAt - this.answeredAt;
    this.state = "playing";
    this.played = true;
    this.rtcPlayed = true;
    this.rtcFailures = 0;
    this.retryDelay = RETRY_FIRST_MS;
    this.statsAt = -Infinity;
    this.framesDecoded = -1;
    this.freshAt = performance.now();
    this.mode.textContent = "WebRTC video";
    this.mode.title = `first picture ${Math.round(this.firstPictureMs)} ms after the answer`;
  }

  onRtcState(session, state) {
    if (session !== this.session) return;
    if (state === "failed") {
      this.rtcFailed(session, "connection failed");
    } else if (state === "disconnected") {
      clearTimeout(this.rtcTimer);
      this.rtcTimer = setTimeout(() => this.rtcFailed(session, "connection lost"),
        DISCONNECTED_GRACE_MS);
    } else if (state === "connected") {
      clearTimeout(this.rtcTimer);
    }
  }

  // Replaces a failed session after a backoff, or falls back to the next transport.
  rtcFailed(session, reason) {
    if (session !== this.session) return;
    if (!this.rtcPlayed || this.rtcFailures >= RTC_RECONNECTS) {
      this.fallBack(reason);
      return;
    }
    const delay = RTC_BACKOFF_FIRST_MS * 2 ** this.rtcFailures;
    this.rtcFailures += 1;
    this.stop();
    this.state = "starting";
    this.showOverlay(null);
    this.mode.textContent = `WebRTC ${reason}: reconnecting in ${delay / 1000} s…`;
    this.mode.title = this.mode.textContent;
    this.rtcTimer = setTimeout(() => this.begin("webrtc"), delay);
  }

  onCanPlay() {
    // A WebRTC session's wait ends with its first picture, not with the first audio.
    if (this.transport !== "webrtc") clearTimeout(this.startTimer);
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
    if (this.transport === "webrtc") return;
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
    if (!this.video.error) return;  // a source we dropped
    if (this.transport === "webrtc") {
      if (this.session) this.rtcFailed(this.session, mediaError(this.video.error));
      return;
    }
    // A video that played once gets one more go (the gateway may have restarted).
    if (this.state === "playing" && this.reconnect()) return;
    this.fallBack(mediaError(this.video.error));
  }

  onEnded() {
    // WebRTC ends through its connection state; a stream's end is the gateway closing it
    // (a restart, or the camera's encode stopped).
    if (this.transport === "webrtc" || this.state === "mjpeg") return;
    if (!this.reconnect()) this.fallBack("the stream ended");
  }

  fallBack(reason) {
    if (this.state === "mjpeg") return;
    const failed = this.transport;
    const next = this.next(failed);
    if (next !== "mjpeg") {
      this.start(next);
      this.mode.title = `${LABELS[failed]} failed: ${reason}`;
      return;
    }
    this.stop();
    this.transport = "mjpeg";
    this.state = "mjpeg";
    this.failedAt = performance.now();
    this.video.hidden = true;
    this.muteButton.hidden = true;
    this.retryButton.hidden = false;
    if (this.mjpeg) {
      this.img.src = this.mjpeg;
      this.img.hidden = false;
    }
    this.mode.textContent = `${this.mjpeg ? "MJPEG — " : ""}video failed: ${reason}`;
    this.mode.title = this.mode.textContent;
    this.showOverlay(null);
  }

  showMuted() {
    this.muteButton.textContent = this.video.muted ? "Unmute" : "Mute";
  }

  // Names the transport on the picture, with the estimated delay when there is one.
  showOverlay(latencyS) {
    const transport = this.transport === "mjpeg" && !this.mjpeg ? null : this.transport;
    this.overlay.hidden = transport === null;
    this.overlay.dataset.transport = transport || "";
    this.transportLabel.textContent = LABELS[transport] || "";
    const known = typeof latencyS === "number" && ESTIMATES[transport];
    this.latencyLabel.hidden = !known;
    this.latencyLabel.textContent = known
      ? `≈ ${latencyS < 1 ? ms(latencyS) : `${latencyS.toFixed(1)} s`} (estimate)` : "";
    this.overlay.title = known ? ESTIMATES[transport] : "";
    if (known) this.overlay.dataset.latencyMs = String(Math.round(latencyS * 1000));
    else delete this.overlay.dataset.latencyMs;
  }

  chase(now) {
    if (this.state !== "playing") return;
    if (this.transport === "webrtc") {
      this.measure(now);
      return;
    }
    const video = this.video;
    const buffered = video.buffered;
    if (!buffered.length) return;
    const lead = buffered.end(buffered.length - 1) - video.currentTime;
    this.showOverlay(lead);
    if (this.transport === "hls") {
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

  // Reads the WebRTC session's stats now and then for the overlay's estimate.
  measure(now) {
    const session = this.session;
    if (this.statsBusy || now - this.statsAt < STATS_MS || !session) return;
    this.statsBusy = true;
    this.statsAt = now;
    session.estimate().then((e) => {
      if (session !== this.session || this.state !== "playing") return;
      if (e.framesDecoded !== this.framesDecoded) {
        this.framesDecoded = e.framesDecoded;
        this.freshAt = now;
      } else if (now - this.freshAt >= STALL_MS) {
        // The stats would go on showing the last pictures' delay.
        this.showOverlay(null);
        const s = Math.round((now - this.freshAt) / 1000);
        this.mode.textContent = `WebRTC video · no new picture for ${s} s`;
        return;
      }
      this.showOverlay(e.latencyS);
      const parts = ["WebRTC video"];
      if (e.jitterS !== null) parts.push(`jitter buffer ${ms(e.jitterS)}`);
      if (e.rttS !== null) parts.push(`RTT ${ms(e.rttS)}`);
      this.mode.textContent = parts.join(" · ");
    }).catch(() => {}).finally(() => { this.statsBusy = false; });
  }
}

// The viewer's source choice ("webrtc", "mp4" or "hls"), kept where the browser allows storage.
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
