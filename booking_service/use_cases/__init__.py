"""Use cases. Each takes primitives and a unit of work, and commits explicitly."""
