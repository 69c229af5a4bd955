"""The `mflows` command-line interface (a thin Typer shell over `manifold_flows`)."""
