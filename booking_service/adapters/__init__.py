"""The outside world, each system behind a small module that uses its own client library."""
