"""The native API: /classify, /embed, /reconstruct, /similar, /models, health."""
