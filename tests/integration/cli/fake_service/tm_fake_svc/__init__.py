"""A stand-in service for supervisor/CLI tests: answers GET /status like a real service."""
