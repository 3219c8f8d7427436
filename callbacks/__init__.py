"""Callbacks: the Callback base, its events, and one module per callback."""
