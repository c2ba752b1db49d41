"""Hostile-input corpus for the package reader: a generator and the expectations it writes."""
