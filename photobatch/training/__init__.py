"""Training the captioner and the personal head (not imported by a scan)."""
