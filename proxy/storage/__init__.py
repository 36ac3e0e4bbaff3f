"""The data directory: private projects, users and tokens, and the upstream caches on disk."""
