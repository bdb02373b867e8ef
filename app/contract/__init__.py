"""What training and serving agree on, free of TensorFlow and of HTTP: the model repository's
layout and manifest, how an image becomes the model's 28x28 input, the out-of-distribution
score, the similarity index's format and the error hierarchy. The only part of app/ that
training/ may import (tests/test_structure.py)."""
