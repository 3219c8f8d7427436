"""Training: the Learner, optimizer groups, schedules, metrics and interpretation."""
