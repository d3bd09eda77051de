"""What crosses a process boundary: the messages, their framing on the queues and a child's pipe,
the standard library's private multiprocessing parts, and the manager's launch."""
