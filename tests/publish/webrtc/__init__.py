"""WebRTC egress: WHEP sdpfrag, ICE trickle and restart against live peer connections."""
