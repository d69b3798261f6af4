"""An example bench plugin (see bench_example_plugin.suffix)."""
