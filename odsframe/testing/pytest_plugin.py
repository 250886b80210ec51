"""pytest plugin: fixtures for testing code against a local ODS portal."""
