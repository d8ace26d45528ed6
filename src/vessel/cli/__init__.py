"""The `vessel` command line: Docker's verbs, flags, output and exit codes."""
