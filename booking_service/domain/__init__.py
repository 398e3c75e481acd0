"""Pure rules with no I/O: scheduling, recurrences, who may be messaged, events, errors."""
