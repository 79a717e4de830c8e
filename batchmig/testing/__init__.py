"""pytest plugin for batchmig and its provider plugins (being built)."""
