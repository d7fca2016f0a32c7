"""`python -m edgestar` runs the command line."""

from .cli import main

main()
