"""Internals shared by every loss: the reduction and the trace-time checks."""
