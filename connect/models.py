"""Models of the connect app."""
