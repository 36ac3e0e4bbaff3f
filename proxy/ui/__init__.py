"""The web interface for people: handlers, view models, templates, rendered descriptions."""
