"""The front doors, one sub-package each (native, Open Inference Protocol V2, TensorFlow
Serving REST): each translates its protocol to the core and back, and none imports another."""
