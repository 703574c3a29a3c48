"""HTTP routes, one blueprint per API family."""
