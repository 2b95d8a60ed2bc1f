"""Data in: sources (one per format), prepare (split, scale, summarise) and validate (the GX gate)."""
