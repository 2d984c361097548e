"""The live GitHub export: a paging client with a retry policy, resumable state, and the exporter."""
