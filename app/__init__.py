"""latentserve's HTTP service: /embed, /reconstruct and /classify over exported SavedModels."""
