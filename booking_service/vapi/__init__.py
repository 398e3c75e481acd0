"""The VAPI webhook: envelope parsing, tool registry, spoken replies."""
