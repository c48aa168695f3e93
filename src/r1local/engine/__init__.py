"""The inference engine: one llama.cpp context per model, continuous batching across requests."""
