"""VAPI at the edge of the voice pipeline: its envelope, credentials and answer shape."""
