"""The `lowlight` command line: one module per command; the only place that imports typer or rich."""
