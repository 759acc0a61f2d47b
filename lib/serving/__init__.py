"""Child servers: one way to start, watch and stop them (process), and the servers we run."""
