"""From a model's outputs to an answer: the OOD score, the label / abstain decision, display names, TTA."""
