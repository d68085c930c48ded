"""One thin entry point per DVC stage (python -m pipeline.<stage>); the work is in s2hand/."""
