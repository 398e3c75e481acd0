"""Retell at the edge of the voice pipeline: its signature, request body, answer shape and tool
definitions (custom functions at POST /api/retell/ORG_ID/tools)."""
