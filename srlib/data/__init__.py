"""Images in: CelebA folders and their partitions, the study's degradation, how real photographs get small,
the embedded sample, and PNG output written a band at a time."""
