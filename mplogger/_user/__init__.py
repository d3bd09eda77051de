"""The user's process (and the children it starts): runs, the session and its client of the
manager, exit hooks, console capture, runs attached from a child, disabled runs."""
