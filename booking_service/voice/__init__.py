"""The voice assistants' tool pipeline, and each platform's edge (voice/vapi/)."""
