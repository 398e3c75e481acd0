"""Process plumbing: the app's runtime, logging, metrics, start-up checks."""
