"""Subcommands of the `medviewer` CLI, one module each (see medviewer.cli.COMMAND_MODULES)."""
