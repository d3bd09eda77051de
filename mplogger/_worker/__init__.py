"""An internal worker process of the manager's pool: it writes each run's records to the store and
collects the run's environment. Nothing here is imported by the user's process."""
