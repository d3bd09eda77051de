"""Code every process runs (user, child, manager, worker, reader): values and their JSON, metric
rules, settings, errors, terminal output, file and process facts. It imports no other layer."""
