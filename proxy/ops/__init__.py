"""Running it: server processes, supervisor, logging, and offline care of the data directory."""
