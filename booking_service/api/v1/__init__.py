"""The public REST API under /api/v1 (#28): JSON in and out, times with the business's offset,
problem documents for errors, an API key per client, an Idempotency-Key on every POST.
Modules: blueprint (keys, scopes, reading requests), schemas (marshmallow, also the OpenAPI
document's), problems (errors and refusals worded), idempotency, slots, bookings, openapi."""
