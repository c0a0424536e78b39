"""Ratings: the SPEC §8 figures (pooled, never a mean of means) summed at query time for any scope and period."""
