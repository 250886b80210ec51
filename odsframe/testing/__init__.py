"""The local ODS-compatible portal."""
