"""`python -m semsearch` is the same as the `semsearch` command."""

from semsearch.cli.main import main

main()
