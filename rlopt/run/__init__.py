"""A run folder's life: the recorder that writes its CSVs, the checkpoints that let it resume exactly,
the lock and checks that keep it one process's and consistent, interrupts, and the record of a run
that stopped, and the life of one run through them (`experiment`), in which `runner` drives the controller
(whose side of it is `protocol`). train/evaluate/tune all start runs there.
"""
