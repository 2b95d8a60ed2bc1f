"""The frozen feature space shared by training (the quality monitor) and evaluation: the featurizer network,
every metric computed in it, and the quality recipe (Fréchet distance to a holdout over the real floor)."""
