"""Loaded model versions: the registry, the version policy and the TensorFlow loader."""
