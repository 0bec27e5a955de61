"""Click-to-segment: shared, torch-free pieces of the engines."""
