"""Test support: the development Redis launcher, a PDF maker, the generated RAG corpus."""
