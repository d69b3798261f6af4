"""The diffusion layer: loading a backbone (hub id, local directory, `tiny`), rendering under a
suite's protocol, the pieces of training every method shares, cached class images."""
