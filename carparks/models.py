"""Models of the carparks app."""
