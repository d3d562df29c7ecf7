"""Fault injection: hookgate's delivery guarantees under crashes, bus outages and API errors."""
