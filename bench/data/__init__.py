"""The data model: suites, subjects, prompt sets, and the plan of cells (seeds, initial noise).
Imports nothing from the layers above it."""
