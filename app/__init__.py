"""latentserve's HTTP service: /embed, /reconstruct, /classify and /similar over exported
SavedModels, and the same through the Open Inference Protocol and TensorFlow Serving's API."""

__version__ = "0.1.0"
