"""flax.linen modules."""
