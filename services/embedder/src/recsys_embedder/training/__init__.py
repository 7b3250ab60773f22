"""Training: PinSage (``data``, ``graph``, ``train``; DGL for graph work only) and the demographic
two-tower model (``two_tower``; ``two_tower_step`` is its step of ``recsys train`` and
``recsys evaluate``)."""
