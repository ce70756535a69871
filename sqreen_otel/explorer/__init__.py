"""Event Explorer: a local OTLP logs endpoint that stores Sqreen security events in SQLite for a web UI."""
