"""transcode package."""
