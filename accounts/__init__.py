"""Users, roles (Django groups), car-park responsibility, two-factor login and the audit log.

Identity is its own concern, shared by every other app, so it lives apart from them.
"""
