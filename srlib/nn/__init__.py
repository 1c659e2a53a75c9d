"""The NumPy engine: layers with hand-written backward passes, the network as an ordered list of them,
the optimizers, and the convolution paths (im2col, shifted products, Winograd) with their per-machine tuning
and the threads that run them."""
