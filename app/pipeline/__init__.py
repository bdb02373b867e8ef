"""From request bytes to model calls: body parsing, image jobs, the batcher and its supervision."""
