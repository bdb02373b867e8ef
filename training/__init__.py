"""Offline training: autoencoder, classifier head, evaluation and SavedModel export."""
