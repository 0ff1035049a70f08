"""`python -m seglab` runs the command line."""

from seglab.cli import main

main()
