"""Features derived from the silver tables and the catalogue: text embeddings of items and event
texts, per-user interest windows, migrations and evolution stages."""
