"""A store's versions: the layout on disk, gs:// stores, labels (stable, canary), golden sets."""
