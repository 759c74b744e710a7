"""Subcommands of the `tierwise` CLI, one module each."""
