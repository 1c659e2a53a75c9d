"""srlib: 4x face super-resolution with a sub-pixel CNN written from scratch in NumPy."""
__version__ = "1.0.0"
