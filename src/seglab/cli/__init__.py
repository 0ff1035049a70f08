"""The `seglab` command line: `main` builds the Typer app, one module per command group; the
commands parse, call the public functions and print, holding no logic of their own."""
