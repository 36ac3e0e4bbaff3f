"""The pure core: names, models, parsing and rendering of pages and metadata. No I/O here."""
