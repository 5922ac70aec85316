"""Monitoring dashboards, process analytics, alert rules and statements.

Read-side reporting over every other app, kept apart from the engine that writes the history.
"""
