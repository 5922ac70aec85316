"""Shared pytest fixtures for every app's tests."""
