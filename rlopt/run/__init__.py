"""A run folder's life: the recorder that writes its CSVs, the checkpoints that let it resume exactly,
the lock and checks that keep it one process's and consistent, interrupts, and the record of a run
that stopped. `rlopt.controllers.runner` drives a run through these; train/evaluate/tune start it.
"""
