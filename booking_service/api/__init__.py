"""Plain HTTP endpoints (health) and the JSON error envelope."""
