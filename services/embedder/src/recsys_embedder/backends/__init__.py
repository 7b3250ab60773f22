"""Model backends: the Protocol (base), in-process torch, Triton, and the artifact loader."""
