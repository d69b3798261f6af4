"""Tools built on the layers below: sweeps, fixed-noise variation grids, the conformance check
for methods."""
