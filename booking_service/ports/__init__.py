"""The interfaces every outside system sits behind (one small module each), with the value
types that cross them. Use cases call these; adapters/ implement them. Nothing here does I/O,
and nothing here imports an adapter or a use case: both floors import this one."""
