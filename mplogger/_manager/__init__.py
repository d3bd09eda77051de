"""The manager process: the mux that routes each run's records to a worker, and the sampler of
system metrics. Nothing here is imported by the user's process."""
