"""PinSage training (DGL for graph work only)."""
