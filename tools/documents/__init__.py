"""The user's documents: loaders, chunking, the Chroma store, ingestion, retrieval helpers."""
