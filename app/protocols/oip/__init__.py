"""Open Inference Protocol (V2) over REST, as KServe and Triton speak it."""
