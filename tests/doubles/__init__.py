"""Loopback HTTP doubles of the SaaS APIs, following their documented wire contracts."""
