"""The measurement core: the Trace, its metrics, the error tree, configuration, one call, and
the lifecycle every run shares. Imports nothing of the rest of lib/ but the Endpoint type."""
