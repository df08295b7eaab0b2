"""Work chains (one per stage + the pipeline) and the calcfunctions that bridge nodes to the pure kernels."""
