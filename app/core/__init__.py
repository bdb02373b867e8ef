"""The inference core every protocol calls: typed requests in, typed results out."""
