// A WHEP client (WebRTC-HTTP Egress Protocol, RFC 9725) for the camera page: one
// receive-only RTCPeerConnection per session, the offer POSTed once ICE gathering is
// complete (no trickle: the gateway puts all its candidates in the answer too), the
// session's URL kept from `Location` and DELETEd when the session closes.
// No framework, no vendored code.
"use strict";

// The offer goes with the candidates found by then (a STUN server that never answers
// would otherwise hold it back for good).
const WHEP_GATHER_MS = 2000;
// The gateway answers once its own candidates are gathered: well under a second.
const WHEP_ANSWER_MS = 5000;

// A session that could not start; `status` is the HTTP status when the gateway refused it.
class WhepError extends Error {
  constructor(message, status = null) {
    super(message);
    this.name = "WhepError";
    this.status = status;
  }
}

// The ICE servers a WHEP response names in its `Link: <url>; rel="ice-server"` headers
// (RFC 9725 §4.6; several headers arrive joined by commas), as RTCIceServer objects.
// A TURN server without credentials is left out: RTCPeerConnection refuses it.
function parseIceServers(header) {
  const servers = [];
  if (!header) return servers;
  const link = /<([^>]*)>((?:\s*;\s*[^;,=\s]+(?:\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,]*))?)*)/g;
  const param = /;\s*([^;,=\s]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,]*)))?/g;
  for (const [, url, params] of header.matchAll(link)) {
    const attrs = {};
    for (const [, name, quoted, token] of params.matchAll(param)) {
      attrs[name.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, "$1")
        : (token || "").trim();
    }
    if (!(attrs.rel || "").toLowerCase().split(/\s+/).includes("ice-server")) continue;
    const server = { urls: url };
    if (attrs.username !== undefined) server.username = attrs.username;
    if (attrs.credential !== undefined) server.credential = attrs.credential;
    if (/^turns?:/i.test(url) && (server.username === undefined || !server.credential)) continue;
    servers.push(server);
  }
  return servers;
}

// Resolves once the connection has gathered all its candidates, or after `ms`.
function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    }, ms);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

// One WHEP session: receives a camera's video (and audio, if it has some) from the
// endpoint. `onState` hears every connectionState change.
class WhepSession {
  constructor(endpoint, { iceServers = [], onState = () => {} } = {}) {
    this.endpoint = endpoint;
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    this.pc.addEventListener("connectionstatechange", () => onState(this.pc.connectionState));
    const video = this.pc.addTransceiver("video", { direction: "recvonly" });
    const audio = this.pc.addTransceiver("audio", { direction: "recvonly" });
    // The receivers' tracks exist from the start; they carry media once connected.
    this.stream = new MediaStream([video.receiver.track, audio.receiver.track]);
    this.location = null;  // the session's URL, from the answer's Location
    this.etag = null;
    this.iceServers = [];  // what the answer's Link headers offer the next session
    this.closed = false;
    this.previous = null;  // the last stats sample, for per-interval averages
  }

  // Sends the offer and applies the answer; resolves with the stream to play.
  async start() {
    const pc = this.pc;
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, WHEP_GATHER_MS);
    if (this.closed) throw new WhepError("stopped");
    let response;
    try {
      response = await fetch(this.endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", Accept: "application/sdp" },
        body: pc.localDescription.sdp,
        cache: "no-store",
        signal: AbortSignal.timeout(WHEP_ANSWER_MS),
      });
    } catch (err) {
      throw new WhepError(err.name === "TimeoutError"
        ? `no answer within ${WHEP_ANSWER_MS / 1000} s` : err.message);
    }
    const body = await response.text();
    if (response.status !== 201) {
      // The gateway's errors are one line of text/plain: "Error: <reason>".
      const reason = body.trim().split("\n")[0].replace(/^Error:\s*/, "").slice(0, 200);
      throw new WhepError(`HTTP ${response.status}${reason ? ` ${reason}` : ""}`,
        response.status);
    }
    const location = response.headers.get("Location");
    if (location) this.location = new URL(location, response.url).href;
    this.etag = response.headers.get("ETag");
    this.iceServers = parseIceServers(response.headers.get("Link"));
    if (this.closed) {
      this.close();  // stopped while the answer was on its way: end it at the gateway too
      throw new WhepError("stopped");
    }
    await pc.setRemoteDescription({ type: "answer", sdp: body });
    return this.stream;
  }

  // Ends the session at the gateway and here. The DELETE goes first, so that the gateway
  // hears why (a closed connection alone looks like a lost one), and outlives a closing
  // page (keepalive).
  close() {
    this.closed = true;
    const pc = this.pc;
    if (!this.location) {
      pc.close();
      return;
    }
    fetch(this.location, { method: "DELETE", keepalive: true })
      .catch(() => {}).finally(() => pc.close());
    this.location = null;
  }

  // Returns an estimate of the delay this end adds, from getStats(): the video jitter
  // buffer's mean delay since the last call plus half the current round trip. What the
  // camera, the encode and the decoder add is not in it.
  async estimate() {
    const report = await this.pc.getStats();
    let video = null;
    let audio = null;
    let pair = null;
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") video = s;
      else if (s.type === "inbound-rtp" && s.kind === "audio") audio = s;
      else if (s.type === "transport" && s.selectedCandidatePairId) {
        pair = report.get(s.selectedCandidatePairId) || pair;
      }
    });
    if (!pair) {
      report.forEach((s) => {
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
      });
    }
    const rttS = pair && typeof pair.currentRoundTripTime === "number"
      ? pair.currentRoundTripTime : null;
    let jitterS = null;
    if (video && video.jitterBufferEmittedCount > 0) {
      const last = this.previous;
      const count = video.jitterBufferEmittedCount - (last ? last.count : 0);
      const delay = video.jitterBufferDelay - (last ? last.delay : 0);
      // No picture since the last call: the running mean is all there is.
      jitterS = count > 0 ? delay / count
        : video.jitterBufferDelay / video.jitterBufferEmittedCount;
      this.previous = { count: video.jitterBufferEmittedCount, delay: video.jitterBufferDelay };
    }
    return {
      latencyS: jitterS === null ? null : jitterS + (rttS || 0) / 2,
      jitterS,
      rttS,
      framesDecoded: video ? video.framesDecoded || 0 : 0,
      audioPackets: audio ? audio.packetsReceived || 0 : 0,
    };
  }
}
