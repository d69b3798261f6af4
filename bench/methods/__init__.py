"""Built-in personalization methods, one file each. They are registered in pyproject.toml under
the `bench.methods` entry-point group, exactly like outside plugins."""
