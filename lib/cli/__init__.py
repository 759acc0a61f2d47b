"""The command lines (`python -m lib.<name>`): each parses, calls one core function, prints."""
