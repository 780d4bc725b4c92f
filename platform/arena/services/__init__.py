"""Service functions: one per user action, called by thin views (HTML, API, CLI). They raise ArenaError."""
