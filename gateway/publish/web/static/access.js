// The viewing token the page was opened with (`/?token=...`), for players without Basic
// auth: every request the page makes carries it, as `?token=` on the URLs it plays and
// as a bearer token on its WHEP requests (fetch can set the header; <video> and <img>
// cannot). Without one the browser's Basic credentials (or loopback) do.
// No framework, no vendored code.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");

// `url` with the page's token added to its query, or as it is without a token.
function withToken(url) {
  if (!TOKEN) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(TOKEN)}`;
}

// The headers that carry the page's token on a fetch: none without a token.
function tokenHeaders() {
  return TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
}
