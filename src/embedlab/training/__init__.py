"""Training plumbing shared by the tasks: optimizers, schedulers."""
