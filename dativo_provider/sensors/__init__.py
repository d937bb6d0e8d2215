"""Sensors: wait for a condition on a table. Import-light, like the operators."""
