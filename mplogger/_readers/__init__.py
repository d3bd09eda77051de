"""Readers of a store, in whatever process opens it (a script, a notebook, the CLI, on another
day or machine): the API, filters, the CLI, the report, notebook display, exports and engines."""
