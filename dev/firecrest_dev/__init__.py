"""Developer tooling of this repository (never published): the local HPC stack (`stack`, run as
`dev/stack`) and the Python API that tests, benchmarks and dev tools use to start, describe and
drive it."""
