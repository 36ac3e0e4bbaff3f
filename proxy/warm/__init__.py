"""The client-side ``warm`` command: prefill a running proxy from requirements or lock files."""
