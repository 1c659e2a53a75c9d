"""Scores: image metrics as super-resolution papers compute them, paired intervals, and per-image score
tables of any set of upscaling methods."""
