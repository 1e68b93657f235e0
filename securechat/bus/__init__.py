"""Live fan-out between server nodes: the Bus port, in-process (default) and Redis adapters."""
