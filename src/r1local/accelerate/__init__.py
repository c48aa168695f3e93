"""Building llama-cpp-python with the GPU backend a machine needs, and proving the GPU is used."""
