"""Operators: a task's templated arguments turned into one engine call. Import-light."""
